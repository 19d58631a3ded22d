package config

import (
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/qaqueue/qaqueue/pricing"
)

// defaults is the configuration with nothing set, written out by hand so a
// changed default shows up here as a deliberate edit.
func defaults() Config {
	return Config{
		HTTP: HTTP{
			Host: "0.0.0.0", Port: 8000, EnableStreaming: true, EnableMetrics: true,
			PredictTimeout: 60 * time.Second, MaxBodyBytes: MiB, MaxQuestionChars: 10000,
			MaxInputBytes: 256 * KiB,
		},
		Queue: Queue{
			WorkerConcurrency: 100, BatchConcurrency: 20, PollInterval: 20 * time.Millisecond,
			MaxPending: 10000, InteractiveMaxWait: 60 * time.Second, JobTimeout: 120 * time.Second,
			MaxRetries: 3, ResultTTL: 24 * time.Hour, IdempotencyTTL: 24 * time.Hour,
			ShutdownTimeout: 130 * time.Second, WorkerMetricsPort: 9091, WorkerLivenessTTL: 3 * time.Second,
		},
		LM: LM{
			Model: "openai/gpt-4o-mini", TrackUsage: true, Timeout: 30 * time.Second,
			RateMaxWait: 10 * time.Second, StructuredOutputs: "auto", ProgramMaxBytes: 8 * MiB, ProgramMaxVersions: 20,
			Prices: pricing.Default(),
		},
		Cache: Cache{
			Dir: ".cache/qaqueue", DiskEnabled: true, DiskSize: GiB, MemoryEnabled: true,
			MemoryEntries: 100000, RedisEnabled: true, RedisTTL: 7 * 24 * time.Hour,
		},
		Batch: Batch{
			MaxItems: 50000, MaxBytes: 100 * MB, ResultTTL: 7 * 24 * time.Hour,
			CompletionWindow: 24 * time.Hour, OwnerShare: 0.5, ResultsMaxWait: time.Hour,
			UploadsPerProcess: 8, UploadsPerKey: 2, UploadMinRate: 100 * KB, UploadGrace: 30 * time.Second,
			QuotaItemsPerKey: 100000, QuotaBytesPerKey: 200 * MB,
			ProviderBatches: true, ProviderMaxRequests: 50000, ProviderMaxBytes: 200 * MB, ProviderPollInterval: 30 * time.Second,
			ProviderPollMax: 10 * time.Minute, ProviderFallback: "live", ProviderUnfinished: "live",
		},
		Security: Security{MonitoringReadonly: true, SSEMaxStreamsPerKey: 100, WaitMaxPerKey: 1000, AuthFailuresPerMinute: 60},
		Log:      Log{Level: "info", Format: "json"},
	}
}

// ignoreSources compares Configs without their sources, and price tables
// (whose entries are unexported) by their models and LM_PRICES value.
var ignoreSources = cmp.Options{
	cmpopts.IgnoreUnexported(Config{}),
	cmp.Comparer(func(a, b pricing.Table) bool {
		return a.String() == b.String() && slices.Equal(a.Models(), b.Models())
	}),
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	cfg, notices, err := Load(MapLookup(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(defaults(), *cfg, ignoreSources); diff != "" {
		t.Errorf("defaults mismatch (-want +got):\n%s", diff)
	}
	if len(notices) != 0 {
		t.Errorf("notices = %q, want none", notices)
	}
	if diff := cmp.Diff(defaults(), *Default(), ignoreSources); diff != "" {
		t.Errorf("Default() mismatch (-want +got):\n%s", diff)
	}
	for _, s := range cfg.Settings() {
		if s.Source != SourceDefault {
			t.Errorf("%s: source %q, want %q", s.Name, s.Source, SourceDefault)
		}
	}
}

// everything sets every variable to a value other than its default.
func everything() map[string]string {
	return map[string]string{
		"HOST": "127.0.0.1", "PORT": "9000", "WORKERS": "4", "ENABLE_STREAMING": "false",
		"ENABLE_METRICS": "off", "PREDICT_TIMEOUT": "45s", "MAX_BODY_BYTES": "2MiB",
		"MAX_QUESTION_CHARS": "5000", "MAX_INPUT_BYTES": "64KiB",

		"REDIS_URL":               "rediss://app:redis-pass@redis.internal:6380/2",
		"REDIS_SENTINEL_ADDRS":    "s1:26379, s2:26379",
		"REDIS_SENTINEL_MASTER":   "mymaster",
		"REDIS_SENTINEL_PASSWORD": "sentinel-pass",
		"REDIS_POOL_SIZE":         "40",

		"WORKER_CONCURRENCY": "50", "BATCH_CONCURRENCY": "10", "QUEUE_POLL_INTERVAL": "5ms",
		"QUEUE_MAX_PENDING": "500", "INTERACTIVE_MAX_WAIT": "30s", "JOB_TIMEOUT": "3m",
		"MAX_RETRIES": "0", "RESULT_TTL": "1h", "IDEMPOTENCY_TTL": "30m",
		"SHUTDOWN_TIMEOUT": "200s", "WORKER_METRICS_PORT": "9100", "WORKER_LIVENESS_TTL": "5s",

		"DSPY_MODEL": "anthropic/claude-3-5-haiku", "PROGRAM_STATE_PATH": "state.json",
		"PROGRAM_MAX_BYTES": "1MiB", "PROGRAM_MAX_VERSIONS": "5", "PROGRAMS_DIR": "programs", "PROGRAMS_PUSH_ON_START": "true",
		"TRACK_USAGE": "no", "LM_API_BASE": "http://localhost:4000/v1", "LM_API_KEY": "lm-secret-key",
		"AZURE_API_VERSION": "2024-06-01", "LM_TEMPERATURE": "0.7", "LM_MAX_TOKENS": "1000",
		"LM_TIMEOUT": "20s", "LM_RPM": "600", "LM_TPM": "200000", "LM_RATE_MAX_WAIT": "5s",
		"LM_STRUCTURED_OUTPUTS": "off", "LM_PRICES": `{"local/llama": {"input": 0.1, "output": 0.3}}`,

		"CACHE_DIR": "/var/cache/qa", "CACHE_DISK_ENABLED": "false", "CACHE_DISK_SIZE": "500MB",
		"CACHE_MEMORY_ENABLED": "0", "CACHE_MEMORY_ENTRIES": "10", "CACHE_REDIS_ENABLED": "FALSE",
		"CACHE_REDIS_URL": "redis://:cache-pass@cache:6379/0", "CACHE_REDIS_TTL": "1h",

		"BATCH_MAX_ITEMS": "1000", "BATCH_MAX_BYTES": "10MB", "BATCH_RESULT_TTL": "48h",
		"BATCH_COMPLETION_WINDOW": "12h", "BATCH_OWNER_SHARE": "0.25",
		"BATCH_RESULTS_MAX_WAIT":    "10m",
		"BATCH_UPLOADS_PER_PROCESS": "3", "BATCH_UPLOADS_PER_KEY": "1", "BATCH_UPLOAD_MIN_RATE": "10KB",
		"BATCH_UPLOAD_GRACE": "5s", "BATCH_QUOTA_ITEMS_PER_KEY": "5000", "BATCH_QUOTA_BYTES_PER_KEY": "50MB",
		"PROVIDER_BATCHES": "false", "PROVIDER_MAX_REQUESTS": "100", "PROVIDER_MAX_BYTES": "1MB", "PROVIDER_POLL_INTERVAL": "5s",
		"PROVIDER_POLL_MAX": "1m", "PROVIDER_FALLBACK": "provider", "PROVIDER_UNFINISHED": "fail",

		"API_KEYS":        "alice:alice-key,bob:sha256:" + hexSum("bob-key"),
		"ADMIN_API_KEYS":  "ops:ops-key",
		"ALLOW_ANONYMOUS": "true", "MONITORING_READONLY": "false", "MONITORING_COMPLETED_TASKS": "true", "METRICS_PUBLIC": "yes",
		"MONITORING_PROMETHEUS_URL": "http://prometheus:9090",
		"CORS_ORIGINS":              "https://app.example.com,http://localhost:3000", "RATE_LIMIT_RPS": "2.5",
		"RATE_LIMIT_BURST": "7", "TOKEN_BUDGET_PER_DAY": "1000000", "SSE_MAX_STREAMS_PER_KEY": "5",
		"WAIT_MAX_PER_KEY": "50", "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.2", "AUTH_FAILURES_PER_MINUTE": "30",

		"LOG_LEVEL": "WARNING", "LOG_FORMAT": "Console", "LOG_QUESTIONS": "true",

		"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_EXPORTER_OTLP_HEADERS": "api-key=otel-secret", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_SERVICE_NAME": "qa", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod",
	}
}

func TestLoadEveryVariable(t *testing.T) {
	t.Parallel()
	env := everything()
	cfg, _, err := Load(MapLookup(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	temp, maxTokens := 0.7, 1000
	want := Config{
		HTTP: HTTP{
			Host: "127.0.0.1", Port: 9000, Workers: "4", PredictTimeout: 45 * time.Second,
			MaxBodyBytes: 2 * MiB, MaxQuestionChars: 5000, MaxInputBytes: 64 * KiB,
		},
		Redis: Redis{
			URL:            "rediss://app:redis-pass@redis.internal:6380/2",
			SentinelAddrs:  List{"s1:26379", "s2:26379"},
			SentinelMaster: "mymaster", SentinelPassword: "sentinel-pass", PoolSize: 40,
		},
		Queue: Queue{
			WorkerConcurrency: 50, BatchConcurrency: 10, PollInterval: 5 * time.Millisecond,
			MaxPending: 500, InteractiveMaxWait: 30 * time.Second, JobTimeout: 3 * time.Minute,
			ResultTTL: time.Hour, IdempotencyTTL: 30 * time.Minute,
			ShutdownTimeout: 200 * time.Second, WorkerMetricsPort: 9100, WorkerLivenessTTL: 5 * time.Second,
		},
		LM: LM{
			Model: "anthropic/claude-3-5-haiku", ProgramStatePath: "state.json",
			ProgramMaxBytes: MiB, ProgramMaxVersions: 5, ProgramsDir: "programs", ProgramsPushOnStart: true,
			APIBase: "http://localhost:4000/v1", APIKey: "lm-secret-key", AzureAPIVersion: "2024-06-01",
			Temperature: &temp, MaxTokens: &maxTokens, Timeout: 20 * time.Second, RPM: 600,
			TPM: 200000, RateMaxWait: 5 * time.Second, StructuredOutputs: "off",
			Prices: mustPrices(t, `{"local/llama": {"input": 0.1, "output": 0.3}}`),
		},
		Cache: Cache{
			Dir: "/var/cache/qa", DiskSize: 500 * MB, MemoryEntries: 10,
			RedisURL: "redis://:cache-pass@cache:6379/0", RedisTTL: time.Hour,
		},
		Batch: Batch{
			MaxItems: 1000, MaxBytes: 10 * MB, ResultTTL: 48 * time.Hour,
			CompletionWindow: 12 * time.Hour, OwnerShare: 0.25, ResultsMaxWait: 10 * time.Minute,
			UploadsPerProcess: 3, UploadsPerKey: 1, UploadMinRate: 10 * KB, UploadGrace: 5 * time.Second,
			QuotaItemsPerKey: 5000, QuotaBytesPerKey: 50 * MB,
			ProviderBatches: false, ProviderMaxRequests: 100, ProviderMaxBytes: MB, ProviderPollInterval: 5 * time.Second,
			ProviderPollMax: time.Minute, ProviderFallback: "provider", ProviderUnfinished: "fail",
		},
		Security: Security{
			APIKeys: APIKeys{
				{Name: "alice", Plain: "alice-key", SHA256: sha256.Sum256([]byte("alice-key"))},
				{Name: "bob", SHA256: sha256.Sum256([]byte("bob-key"))},
			},
			AdminAPIKeys:   APIKeys{{Name: "ops", Plain: "ops-key", SHA256: sha256.Sum256([]byte("ops-key"))}},
			AllowAnonymous: true, MetricsPublic: true, MonitoringPrometheusURL: "http://prometheus:9090", MonitoringCompletedTasks: true,
			CORSOrigins:  List{"https://app.example.com", "http://localhost:3000"},
			RateLimitRPS: 2.5, RateLimitBurst: 7, TokenBudgetPerDay: 1000000, SSEMaxStreamsPerKey: 5,
			WaitMaxPerKey: 50, TrustedProxies: List{"10.0.0.0/8", "192.168.1.2"}, AuthFailuresPerMinute: 30,
		},
		Log: Log{Level: "warn", Format: "console", Questions: true},
		Telemetry: Telemetry{
			Exporter: "otlp", Endpoint: "http://collector:4318", TracesEndpoint: "http://collector:4318/v1/traces",
			Protocol: "grpc", Headers: "api-key=otel-secret", Sampler: "parentbased_traceidratio", SamplerArg: "0.25",
			ServiceName: "qa", ResourceAttributes: "deployment.environment=prod",
		},
	}
	if diff := cmp.Diff(want, *cfg, ignoreSources); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	settings := cfg.Settings()
	if len(settings) != len(env) {
		t.Errorf("Settings() has %d variables, the test sets %d: a new variable needs a case here", len(settings), len(env))
	}
	for _, s := range settings {
		if _, ok := env[s.Name]; !ok {
			t.Errorf("%s is not set by this test", s.Name)
		}
		if s.Source != SourceEnv {
			t.Errorf("%s: source %q, want %q", s.Name, s.Source, SourceEnv)
		}
	}
}

func mustPrices(t *testing.T, s string) pricing.Table {
	t.Helper()
	table, err := pricing.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// TestLMPrices: LM_PRICES is merged over the built-in prices, and `qa
// config` shows what it changed, as a value that loads back the same.
func TestLMPrices(t *testing.T) {
	t.Parallel()
	cfg, _, err := Load(MapLookup(map[string]string{"LM_PRICES": `{"openai/gpt-4o-mini": {"input": 0.2, "output": 0.8}}`}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := cfg.LM.Prices.Lookup("gpt-4o-mini"); !ok || p.Input != 200_000 || p.BatchOutput != 400_000 {
		t.Errorf("gpt-4o-mini = %+v, %v; want LM_PRICES's $0.20/$0.80", p, ok)
	}
	if _, ok := cfg.LM.Prices.Lookup("openai/gpt-5"); !ok {
		t.Error("the built-in prices are gone")
	}
	var shown Setting
	for _, s := range cfg.Settings() {
		if s.Name == "LM_PRICES" {
			shown = s
		}
	}
	if shown.Group != "LM" || shown.Source != SourceEnv || !strings.Contains(shown.Value, `"openai/gpt-4o-mini":{"input":0.2,"output":0.8,`) {
		t.Errorf("LM_PRICES setting = %+v", shown)
	}
	back, _, err := Load(MapLookup(map[string]string{"LM_PRICES": shown.Value}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cfg.LM.Prices, back.LM.Prices, ignoreSources); diff != "" {
		t.Errorf("LM_PRICES=%s loads a different table (-want +got):\n%s", shown.Value, diff)
	}
	for _, s := range Default().Settings() {
		if s.Name == "LM_PRICES" && s.Value != "" {
			t.Errorf("default LM_PRICES shows %q; want empty (the built-in prices)", s.Value)
		}
	}
}

func TestLoadDerivedDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		env    map[string]string
		dotenv map[string]string
		check  func(t *testing.T, c *Config)
	}{
		{
			name: "cache dir from XDG_CACHE_HOME",
			env:  map[string]string{"XDG_CACHE_HOME": "/x/cache/", "HOME": "/home/u"},
			check: func(t *testing.T, c *Config) {
				if c.Cache.Dir != "/x/cache/qaqueue" {
					t.Errorf("Cache.Dir = %q", c.Cache.Dir)
				}
			},
		},
		{
			name: "cache dir from HOME",
			env:  map[string]string{"HOME": "/home/u"},
			check: func(t *testing.T, c *Config) {
				if c.Cache.Dir != "/home/u/.cache/qaqueue" {
					t.Errorf("Cache.Dir = %q", c.Cache.Dir)
				}
			},
		},
		{
			name: "provider key and base for the model's provider",
			env: map[string]string{
				"DSPY_MODEL": "azure/my-deployment", "AZURE_API_KEY": "az-key", "OPENAI_API_KEY": "oa-key",
				"AZURE_API_BASE": "https://x.openai.azure.com",
			},
			check: func(t *testing.T, c *Config) {
				if c.LM.APIKey != "az-key" || c.LM.APIBase != "https://x.openai.azure.com" {
					t.Errorf("LM.APIKey = %q, LM.APIBase = %q", c.LM.APIKey.Reveal(), c.LM.APIBase)
				}
				if got := c.sources["LM_API_KEY"]; got != "env (AZURE_API_KEY)" {
					t.Errorf("LM_API_KEY source = %q", got)
				}
			},
		},
		{
			name:   "provider key from .env",
			dotenv: map[string]string{"OPENAI_API_KEY": "oa-key"},
			check: func(t *testing.T, c *Config) {
				if c.LM.APIKey != "oa-key" || c.sources["LM_API_KEY"] != ".env (OPENAI_API_KEY)" {
					t.Errorf("LM.APIKey = %q from %q", c.LM.APIKey.Reveal(), c.sources["LM_API_KEY"])
				}
			},
		},
		{
			name: "LM_API_KEY wins over the provider's variable",
			env:  map[string]string{"LM_API_KEY": "lm-key", "OPENAI_API_KEY": "oa-key"},
			check: func(t *testing.T, c *Config) {
				if c.LM.APIKey != "lm-key" || c.sources["LM_API_KEY"] != SourceEnv {
					t.Errorf("LM.APIKey = %q from %q", c.LM.APIKey.Reveal(), c.sources["LM_API_KEY"])
				}
			},
		},
		{
			name: "burst follows the rate",
			env:  map[string]string{"RATE_LIMIT_RPS": "2.5"},
			check: func(t *testing.T, c *Config) {
				if c.Security.RateLimitBurst != 3 {
					t.Errorf("RateLimitBurst = %d, want 3", c.Security.RateLimitBurst)
				}
			},
		},
		{
			name: "burst at least 1",
			env:  map[string]string{"RATE_LIMIT_RPS": "0.1"},
			check: func(t *testing.T, c *Config) {
				if c.Security.RateLimitBurst != 1 {
					t.Errorf("RateLimitBurst = %d, want 1", c.Security.RateLimitBurst)
				}
			},
		},
		{
			name: "log level names",
			env:  map[string]string{"LOG_LEVEL": " Critical "},
			check: func(t *testing.T, c *Config) {
				if c.Log.Level != "fatal" {
					t.Errorf("Log.Level = %q, want fatal", c.Log.Level)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, _, err := Load(MapLookup(tt.env), tt.dotenv)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestLoadDotEnvPrecedence(t *testing.T) {
	t.Parallel()
	env := map[string]string{"PORT": "9001", "HOST": "", "LOG_LEVEL": "debug"}
	dotenv := map[string]string{"PORT": "9002", "HOST": "10.0.0.1", "LOG_FORMAT": "console", "LOG_LEVEL": ""}
	cfg, _, err := Load(MapLookup(env), dotenv)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]string{}
	for _, s := range cfg.Settings() {
		got[s.Name] = [2]string{s.Value, s.Source}
	}
	want := map[string][2]string{
		"PORT":       {"9001", SourceEnv},        // the environment wins
		"HOST":       {"10.0.0.1", SourceDotEnv}, // empty in the environment counts as unset
		"LOG_FORMAT": {"console", SourceDotEnv},  // only in .env
		"LOG_LEVEL":  {"debug", SourceEnv},       // empty in .env is unset too
		"DSPY_MODEL": {"openai/gpt-4o-mini", SourceDefault},
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %q, want %q", name, got[name], w)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"PORT":                 "eighty",
		"JOB_TIMEOUT":          "120",
		"RESULT_TTL":           "1 day",
		"TRACK_USAGE":          "maybe",
		"LM_TEMPERATURE":       "warm",
		"LM_MAX_TOKENS":        "99999999999",
		"CACHE_DISK_SIZE":      "1G",
		"BATCH_MAX_BYTES":      "lots",
		"API_KEYS":             "alice:secret-one,alice:secret-two,nocolon-secret",
		"TOKEN_BUDGET_PER_DAY": "1e6",
		"ADMIN_API_KEYS":       "ops:sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"LM_PRICES":            `{"m/x": {"input": -1, "output": "a", "extra": 1}}`,
	}
	_, err := Parse(MapLookup(env), nil)
	if err == nil {
		t.Fatal("Parse succeeded, want errors")
	}
	want := []string{
		`PORT: must be a whole number, got "eighty"`,
		`JOB_TIMEOUT: must be a duration with a unit, such as 120s, got "120"`,
		`RESULT_TTL: must be a duration such as 30s, 2m or 24h, got "1 day"`,
		`LM_MAX_TOKENS: is out of range, got "99999999999"`,
		`LM_TEMPERATURE: must be a number, got "warm"`,
		`TRACK_USAGE: must be true or false, got "maybe"`,
		`CACHE_DISK_SIZE: has an ambiguous unit "G": write GB (powers of 1000) or GiB (powers of 1024), got "1G"`,
		`BATCH_MAX_BYTES: must be a byte size such as 1073741824, 500MB or 1GiB, got "lots"`,
		`API_KEYS: entry 2: name "alice" is used twice`,
		`API_KEYS: entry 3: must be "name:key" or "name:sha256:<hex>"`,
		`TOKEN_BUDGET_PER_DAY: must be a whole number, got "1e6"`,
		`ADMIN_API_KEYS: entry 1: "ops": sha256 is the digest of an empty key (did the variable holding the key expand to nothing?)`,
		`LM_PRICES: model "m/x": field "extra" is unknown; the fields are input, output, cached_input, batch_input, batch_output, batch_cached_input`,
		`LM_PRICES: model "m/x": field "input" must not be negative, got -1`,
		`LM_PRICES: model "m/x": field "output" must be a number of USD per million tokens, got "a"`,
	}
	got := strings.Split(err.Error(), "\n")
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
	for _, secret := range []string{"secret-one", "secret-two", "nocolon-secret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks %q:\n%v", secret, err)
		}
	}
	var e *Error
	if !errors.As(err, &e) || e.Var == "" {
		t.Errorf("errors.As(*Error) = %v, %+v", errors.As(err, &e), e)
	}
	if _, _, err := Load(MapLookup(env), nil); err == nil {
		t.Error("Load succeeded on values that do not parse")
	}
}

func TestNotices(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{name: "none", env: nil, want: nil},
		{
			name: "workers",
			env:  map[string]string{"WORKERS": "4"},
			want: []string{"WORKERS=4 has no effect here: scale workers as processes or replicas"},
		},
		{
			name: "provider key",
			env:  map[string]string{"OPENAI_API_KEY": "k", "OPENAI_API_BASE": "http://localhost:1/v1"},
			want: []string{"LM_API_KEY is unset: using OPENAI_API_KEY", "LM_API_BASE is unset: using OPENAI_API_BASE"},
		},
		{
			name: "fast polling",
			env:  map[string]string{"QUEUE_POLL_INTERVAL": "1ms"},
			want: []string{"QUEUE_POLL_INTERVAL=1ms: each idle interactive server makes about 3000 Redis commands/s"},
		},
		{
			name: "idempotency outlives results",
			env:  map[string]string{"IDEMPOTENCY_TTL": "48h"},
			want: []string{"IDEMPOTENCY_TTL (48h) exceeds RESULT_TTL (24h): a replay after the job's record expired finds no job"},
		},
		{
			name: "no-op settings",
			env:  map[string]string{"RATE_LIMIT_BURST": "5", "CACHE_REDIS_URL": "redis://c:6379", "CACHE_REDIS_ENABLED": "false"},
			want: []string{
				"RATE_LIMIT_BURST has no effect while RATE_LIMIT_RPS is 0 (off)",
				"CACHE_REDIS_URL has no effect while CACHE_REDIS_ENABLED is false",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, got, err := Load(MapLookup(tt.env), nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("notices mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHelpers(t *testing.T) {
	t.Parallel()
	cfg, _, err := Load(MapLookup(map[string]string{"HOST": "::1", "PORT": "8080"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ got, want string }{
		{cfg.HTTPAddr(), "[::1]:8080"},
		{cfg.WorkerMetricsAddr(), "[::1]:9091"},
		{cfg.Redis.EffectiveURL().Reveal(), DefaultRedisURL},
		{cfg.LM.Provider(), "openai"},
		{LM{Model: "gpt-4o"}.Provider(), "openai"},
		{LM{Model: "Together_AI/x"}.Provider(), "together_ai"},
		{providerVar("together_ai/x", "API_KEY"), "TOGETHER_AI_API_KEY"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	// Pools: sized for the process unless REDIS_POOL_SIZE says otherwise.
	for _, tt := range []struct {
		name      string
		r         Redis
		q         Queue
		api, work int
	}{
		{"defaults", cfg.Redis, cfg.Queue, 100, 120},
		{"small worker", Redis{}, Queue{WorkerConcurrency: 10, BatchConcurrency: 5}, 100, 100},
		{"big worker", Redis{}, Queue{WorkerConcurrency: 1000, BatchConcurrency: 50}, 100, 1050},
		{"set", Redis{PoolSize: 30}, Queue{WorkerConcurrency: 1000}, 30, 30},
	} {
		if api, work := tt.r.APIPoolSize(), tt.r.WorkerPoolSize(tt.q); api != tt.api || work != tt.work {
			t.Errorf("%s: pools api %d, worker %d; want %d, %d", tt.name, api, work, tt.api, tt.work)
		}
	}
	if !cfg.Redis.Embedded() || cfg.Redis.UsesSentinel() {
		t.Errorf("Embedded() = %v, UsesSentinel() = %v, want true, false", cfg.Redis.Embedded(), cfg.Redis.UsesSentinel())
	}
	withURL := Redis{URL: "redis://r:6379/0"}
	if withURL.Embedded() || withURL.EffectiveURL() != "redis://r:6379/0" {
		t.Errorf("with REDIS_URL: Embedded() = %v, EffectiveURL() = %q", withURL.Embedded(), withURL.EffectiveURL().Reveal())
	}
	names := Variables()
	if len(names) != len(everything()) || names[0] != "HOST" {
		t.Errorf("Variables() = %d names starting %q", len(names), names[0])
	}
}
