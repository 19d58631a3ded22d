package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// secrets are the secret values everything() sets.
var secrets = []string{
	"redis-pass", "sentinel-pass", "lm-secret-key", "cache-pass", "alice-key", "ops-key",
	hexSum("bob-key"),
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	cfg, _, err := Load(MapLookup(everything()), nil)
	if err != nil {
		t.Fatal(err)
	}
	settings, err := json.Marshal(cfg.Settings())
	if err != nil {
		t.Fatal(err)
	}
	whole, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String":          cfg.String(),
		"Settings JSON":   string(settings),
		"Config JSON":     string(whole),
		"%v":              fmt.Sprintf("%v", cfg),
		"%+v of value":    fmt.Sprintf("%+v", *cfg),
		"%#v":             fmt.Sprintf("%#v", cfg),
		"%#v of value":    fmt.Sprintf("%#v", *cfg),
		"%+v of Redis":    fmt.Sprintf("%+v", cfg.Redis),
		"%#v of LM":       fmt.Sprintf("%#v", cfg.LM),
		"%#v of Cache":    fmt.Sprintf("%#v", cfg.Cache),
		"%+v of Security": fmt.Sprintf("%+v", cfg.Security),
		"%#v of Security": fmt.Sprintf("%#v", cfg.Security),
	}
	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s leaks %q:\n%s", name, s, out)
			}
		}
	}
	// The secrets are still there for the code that needs them.
	if cfg.LM.APIKey.Reveal() != "lm-secret-key" || !strings.Contains(cfg.Redis.URL.Reveal(), "redis-pass") {
		t.Error("Reveal() lost the secret")
	}
}

func TestSettingsValues(t *testing.T) {
	t.Parallel()
	cfg, _, err := Load(MapLookup(everything()), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range cfg.Settings() {
		got[s.Name] = s.Value
	}
	want := map[string]string{
		"REDIS_URL":               "rediss://app:***@redis.internal:6380/2",
		"REDIS_SENTINEL_ADDRS":    "s1:26379,s2:26379",
		"REDIS_SENTINEL_PASSWORD": "***",
		"LM_API_KEY":              "***",
		"CACHE_REDIS_URL":         "redis://:***@cache:6379/0",
		"API_KEYS":                "alice:***,bob:***",
		"ADMIN_API_KEYS":          "ops:***",
		"LM_TEMPERATURE":          "0.7",
		"LM_MAX_TOKENS":           "1000",
		"JOB_TIMEOUT":             "3m",
		"SHUTDOWN_TIMEOUT":        "3m20s",
		"QUEUE_POLL_INTERVAL":     "5ms",
		"CACHE_DISK_SIZE":         "500MB",
		"MAX_BODY_BYTES":          "2MiB",
		"ENABLE_METRICS":          "false",
		"LOG_LEVEL":               "warn",
		"RATE_LIMIT_RPS":          "2.5",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %q, want %q", name, got[name], w)
		}
	}
	// Every printed value reads back to the same configuration.
	back := map[string]string{}
	for _, s := range cfg.Settings() {
		back[s.Name] = s.Value
	}
	for name, v := range everything() {
		if strings.Contains(got[name], Mask) {
			back[name] = v // masked values cannot round-trip
		}
	}
	again, _, err := Load(MapLookup(back), nil)
	if err != nil {
		t.Fatalf("printed values do not load: %v", err)
	}
	if diff := cmp.Diff(cfg, again, ignoreSources); diff != "" {
		t.Errorf("round trip mismatch (-first +again):\n%s", diff)
	}
}

func TestUnsetOptionalValuesPrintEmpty(t *testing.T) {
	t.Parallel()
	got := map[string]string{}
	for _, s := range Default().Settings() {
		got[s.Name] = s.Value
	}
	for _, name := range []string{"LM_TEMPERATURE", "LM_MAX_TOKENS", "LM_API_KEY", "REDIS_URL", "API_KEYS", "CORS_ORIGINS"} {
		if got[name] != "" {
			t.Errorf("%s = %q, want empty", name, got[name])
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://user:pw@host:6379/1", "redis://user:***@host:6379/1"},
		{"redis://:pw@host", "redis://:***@host"},
		{"redis://lonely-password@host", "redis://***@host"},
		{"rediss://u%40x:p%3Aw@host", "rediss://u%40x:***@host"},
		{"redis://host/0?password=pw&dial_timeout=3s", "redis://host/0?dial_timeout=3s&password=***"},
		{"redis://u:pw@host/0#frag", "redis://u:***@host/0#frag"},
		{"redis:opaque-secret", "redis:***"},
		{"redis://u:p w@host:x", Mask},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	cfg, _, err := Load(MapLookup(map[string]string{"PORT": "9000", "PROGRAM_STATE_PATH": "my state.json"}), map[string]string{"HOST": "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	out := cfg.String()
	for _, want := range []string{
		"# HTTP\nHOST=10.0.0.1                                 # .env\nPORT=9000                                     # env\n",
		"\n\n# Redis\nREDIS_URL=                                    # default\n",
		`PROGRAM_STATE_PATH="my state.json"` + "            # env\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("String() lacks %q:\n%s", want, out)
		}
	}
	// A hand-built Config has no sources; it still prints.
	hand := &Config{Queue: Queue{JobTimeout: 90 * time.Second}}
	if out := hand.String(); !strings.Contains(out, "JOB_TIMEOUT=1m30s\n") {
		t.Errorf("hand-built String():\n%s", out)
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0s", time.Hour: "1h", 168 * time.Hour: "168h", 2 * time.Minute: "2m",
		130 * time.Second: "2m10s", 20 * time.Millisecond: "20ms", -time.Hour: "-1h",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
