package main

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/config"
)

// TestServeAPIRefusesToRunOpen: `qa api` without API_KEYS stops before it
// connects to anything, unless ALLOW_ANONYMOUS=true.
func TestServeAPIRefusesToRunOpen(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}
	var stderr bytes.Buffer
	e := env{stdout: &stderr, stderr: &stderr, getenv: func(k string) string { return vars[k] }}
	if err := runServeAPI(context.Background(), e, nil); !errors.Is(err, errOpenAPI) {
		t.Fatalf("runServeAPI without API_KEYS = %v, want errOpenAPI", err)
	}
	for _, tt := range []struct {
		env  map[string]string
		want error
	}{
		{map[string]string{}, errOpenAPI},
		{map[string]string{"ALLOW_ANONYMOUS": "true"}, nil},
		{map[string]string{"API_KEYS": "alice:alice-key"}, nil},
		{map[string]string{"ADMIN_API_KEYS": "ops:ops-key"}, errOpenAPI},
	} {
		cfg, _, err := config.Load(config.MapLookup(tt.env), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkOpenAPI(cfg); !errors.Is(err, tt.want) {
			t.Errorf("%v: checkOpenAPI = %v, want %v", tt.env, err, tt.want)
		}
	}
}

// TestAPIConfigMapsSecurity: every security variable reaches api.Config.
func TestAPIConfigMapsSecurity(t *testing.T) {
	t.Parallel()
	cfg, _, err := config.Load(config.MapLookup(map[string]string{
		"API_KEYS": "alice:alice-key", "ADMIN_API_KEYS": "ops:ops-key", "MONITORING_READONLY": "false",
		"METRICS_PUBLIC": "true", "CORS_ORIGINS": "https://app.example.com", "RATE_LIMIT_RPS": "2.5",
		"RATE_LIMIT_BURST": "7", "TOKEN_BUDGET_PER_DAY": "1000", "SSE_MAX_STREAMS_PER_KEY": "5",
		"WAIT_MAX_PER_KEY": "50", "TRUSTED_PROXIES": "10.0.0.0/8", "AUTH_FAILURES_PER_MINUTE": "30",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := apiConfig(cfg)
	// Only the security fields: others map the rest.
	security := func(c api.Config) api.Config {
		return api.Config{
			MonitoringWritable: c.MonitoringWritable, APIKeys: c.APIKeys, AdminAPIKeys: c.AdminAPIKeys,
			MetricsPublic: c.MetricsPublic, CORSOrigins: c.CORSOrigins, RateLimitRPS: c.RateLimitRPS,
			RateLimitBurst: c.RateLimitBurst, TokenBudgetPerDay: c.TokenBudgetPerDay, MaxStreamsPerKey: c.MaxStreamsPerKey,
			MaxWaitsPerKey: c.MaxWaitsPerKey, TrustedProxies: c.TrustedProxies, AuthFailuresPerMinute: c.AuthFailuresPerMinute,
		}
	}
	want := api.Config{
		MonitoringWritable: true, APIKeys: cfg.Security.APIKeys, AdminAPIKeys: cfg.Security.AdminAPIKeys,
		MetricsPublic: true, CORSOrigins: []string{"https://app.example.com"}, RateLimitRPS: 2.5, RateLimitBurst: 7,
		TokenBudgetPerDay: 1000, MaxStreamsPerKey: 5, MaxWaitsPerKey: 50, TrustedProxies: []string{"10.0.0.0/8"}, AuthFailuresPerMinute: 30,
	}
	if diff := cmp.Diff(want, security(got), cmp.Comparer(func(a, b config.APIKeys) bool { return a.String() == b.String() })); diff != "" {
		t.Errorf("apiConfig (-want +got):\n%s", diff)
	}
	if got.APIKeys[0].Name != "alice" || !got.APIKeys[0].Matches("alice-key") {
		t.Errorf("APIKeys = %v", got.APIKeys)
	}
}
