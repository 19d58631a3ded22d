package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string // every error line, in order
	}{
		{name: "defaults", env: nil, want: nil},
		{name: "everything set", env: everything(), want: nil},
		{
			name: "ports",
			env:  map[string]string{"PORT": "70000", "WORKER_METRICS_PORT": "-1"},
			want: []string{
				"PORT: must be a port from 0 to 65535, got 70000",
				"WORKER_METRICS_PORT: must be a port from 0 to 65535, got -1",
			},
		},
		{
			name: "metrics port clashes",
			env:  map[string]string{"PORT": "9091"},
			want: []string{"WORKER_METRICS_PORT: must differ from PORT (9091): `qa dev` serves both in one process"},
		},
		{name: "free ports may both be 0", env: map[string]string{"PORT": "0", "WORKER_METRICS_PORT": "0"}},
		{
			name: "liveness ttl under a second",
			env:  map[string]string{"WORKER_LIVENESS_TTL": "500ms"},
			want: []string{"WORKER_LIVENESS_TTL: must be at least 1s (renewed every third of it), got 500ms"},
		},
		{
			name: "http limits",
			env:  map[string]string{"PREDICT_TIMEOUT": "-1s", "MAX_BODY_BYTES": "0", "MAX_QUESTION_CHARS": "0"},
			want: []string{
				"PREDICT_TIMEOUT: must be positive, got -1s",
				"MAX_BODY_BYTES: must be at least 1, got 0",
				"MAX_QUESTION_CHARS: must be at least 1, got 0",
			},
		},
		{
			name: "redis url scheme",
			env:  map[string]string{"REDIS_URL": "http://user:hunter2@host:6379"},
			want: []string{`REDIS_URL: must start with redis:// or rediss:// (TLS), got "http://user:***@host:6379"`},
		},
		{
			name: "redis url without scheme",
			env:  map[string]string{"REDIS_URL": "localhost:6379"},
			want: []string{`REDIS_URL: must start with redis:// or rediss:// (TLS), got "localhost:***"`},
		},
		{
			name: "redis url unparsable",
			env:  map[string]string{"REDIS_URL": "redis://user:pa ss@host:port"},
			want: []string{`REDIS_URL: must be a URL such as redis://localhost:6379/0, got "***"`},
		},
		{
			name: "redis url parts",
			env: map[string]string{
				"REDIS_URL":       "redis://:pw@/0",
				"CACHE_REDIS_URL": "redis://cache:0/x",
			},
			want: []string{
				`REDIS_URL: must name a host, as in redis://localhost:6379/0, got "redis://:***@/0"`,
				`CACHE_REDIS_URL: must have a port from 1 to 65535, got "redis://cache:0/x"`,
			},
		},
		{
			name: "redis database",
			env:  map[string]string{"REDIS_URL": "rediss://h/db1"},
			want: []string{`REDIS_URL: must end with a database number (/0) or nothing, got "rediss://h/db1"`},
		},
		{
			name: "sentinel addresses",
			env:  map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379,s2,s3:0", "REDIS_SENTINEL_MASTER": "m"},
			want: []string{
				`REDIS_SENTINEL_ADDRS: each address must be host:port, got "s2"`,
				`REDIS_SENTINEL_ADDRS: each port must be from 1 to 65535, got "s3:0"`,
			},
		},
		{
			name: "sentinel without master",
			env:  map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379"},
			want: []string{"REDIS_SENTINEL_MASTER: must name the master when REDIS_SENTINEL_ADDRS is set"},
		},
		{
			name: "master without sentinels",
			env:  map[string]string{"REDIS_SENTINEL_MASTER": "m"},
			want: []string{"REDIS_SENTINEL_ADDRS: must list the Sentinels when REDIS_SENTINEL_MASTER is set"},
		},
		{
			name: "negative pool",
			env:  map[string]string{"REDIS_POOL_SIZE": "-1"},
			want: []string{"REDIS_POOL_SIZE: must be at least 0, got -1"},
		},
		{
			name: "queue counts",
			env: map[string]string{
				"WORKER_CONCURRENCY": "0", "BATCH_CONCURRENCY": "-2", "QUEUE_MAX_PENDING": "0",
				"MAX_RETRIES": "-1", "QUEUE_POLL_INTERVAL": "0s",
			},
			want: []string{
				"WORKER_CONCURRENCY: must be at least 1, got 0",
				"BATCH_CONCURRENCY: must be at least 1, got -2",
				"QUEUE_POLL_INTERVAL: must be positive, got 0s",
				"QUEUE_MAX_PENDING: must be at least 1, got 0",
				"MAX_RETRIES: must be at least 0, got -1",
			},
		},
		{
			name: "provider batches",
			env: map[string]string{
				"PROVIDER_MAX_REQUESTS": "0", "PROVIDER_MAX_BYTES": "0", "PROVIDER_POLL_INTERVAL": "1m",
				"PROVIDER_POLL_MAX": "30s", "PROVIDER_FALLBACK": "json", "PROVIDER_UNFINISHED": "drop",
			},
			want: []string{
				"PROVIDER_MAX_REQUESTS: must be at least 1, got 0",
				"PROVIDER_MAX_BYTES: must be at least 1, got 0",
				"PROVIDER_POLL_MAX: must be at least PROVIDER_POLL_INTERVAL (1m0s), got 30s",
				"PROVIDER_FALLBACK: must be one of live, provider, got \"json\"",
				"PROVIDER_UNFINISHED: must be one of live, fail, got \"drop\"",
			},
		},
		{
			name: "whole seconds where asynq stores seconds",
			env: map[string]string{
				"INTERACTIVE_MAX_WAIT": "30500ms", "JOB_TIMEOUT": "1500ms", "RESULT_TTL": "1h0m0.5s",
				"IDEMPOTENCY_TTL": "100ms", "BATCH_RESULT_TTL": "2.5s", "BATCH_COMPLETION_WINDOW": "90.1s",
				"SHUTDOWN_TIMEOUT": "1.5s", "LM_TIMEOUT": "100ms", "LM_RATE_MAX_WAIT": "0s",
				"PREDICT_TIMEOUT": "1s",
			},
			want: []string{
				"INTERACTIVE_MAX_WAIT: must be a whole number of seconds (asynq stores seconds), got 30.5s",
				"JOB_TIMEOUT: must be a whole number of seconds (asynq stores seconds), got 1.5s",
				"RESULT_TTL: must be a whole number of seconds (asynq stores seconds), got 1h0m0.5s",
				"IDEMPOTENCY_TTL: must be a whole number of seconds (asynq stores seconds), got 100ms",
				"BATCH_RESULT_TTL: must be a whole number of seconds (asynq stores seconds), got 2.5s",
				"BATCH_COMPLETION_WINDOW: must be a whole number of seconds (asynq stores seconds), got 1m30.1s",
			},
		},
		{
			name: "positive durations",
			env: map[string]string{
				"JOB_TIMEOUT": "0s", "RESULT_TTL": "-1h", "SHUTDOWN_TIMEOUT": "0s", "LM_TIMEOUT": "0s",
				"LM_RATE_MAX_WAIT": "-1s", "CACHE_REDIS_TTL": "0s", "INTERACTIVE_MAX_WAIT": "0s",
			},
			want: []string{
				"INTERACTIVE_MAX_WAIT: must be positive, got 0s",
				"JOB_TIMEOUT: must be positive, got 0s",
				"RESULT_TTL: must be positive, got -1h",
				"SHUTDOWN_TIMEOUT: must be positive, got 0s",
				"LM_TIMEOUT: must be positive, got 0s",
				"LM_RATE_MAX_WAIT: must not be negative, got -1s",
				"CACHE_REDIS_TTL: must be positive, got 0s",
			},
		},
		{
			name: "job timeout too short for the LM attempts",
			env:  map[string]string{"LM_TIMEOUT": "40s", "JOB_TIMEOUT": "130s", "SHUTDOWN_TIMEOUT": "140s"},
			want: []string{"JOB_TIMEOUT: must exceed 3 LM attempts × LM_TIMEOUT (40s) + LM_RATE_MAX_WAIT (10s) = 2m10s, got 2m10s"},
		},
		{
			name: "shutdown shorter than a job",
			env:  map[string]string{"SHUTDOWN_TIMEOUT": "120s"},
			want: []string{"SHUTDOWN_TIMEOUT: must exceed JOB_TIMEOUT (2m) so running jobs can finish, got 2m"},
		},
		{
			name: "predict waits longer than a job runs",
			env:  map[string]string{"PREDICT_TIMEOUT": "121s"},
			want: []string{"PREDICT_TIMEOUT: must not exceed JOB_TIMEOUT (2m), got 2m1s"},
		},
		{
			name: "lm values",
			env: map[string]string{
				"DSPY_MODEL": "gpt-4o-mini", "LM_API_BASE": "localhost:4000", "LM_TEMPERATURE": "2.5",
				"LM_MAX_TOKENS": "0", "LM_RPM": "-1", "LM_TPM": "-5", "LM_STRUCTURED_OUTPUTS": "yes",
			},
			want: []string{
				`DSPY_MODEL: must be provider/model, such as openai/gpt-4o-mini, got "gpt-4o-mini"`,
				`LM_API_BASE: must be an http:// or https:// URL, got "localhost:***"`,
				"LM_TEMPERATURE: must be between 0 and 2, got 2.5",
				"LM_MAX_TOKENS: must be at least 1, got 0",
				"LM_RPM: must be at least 0, got -1",
				"LM_TPM: must be at least 0, got -5",
				`LM_STRUCTURED_OUTPUTS: must be one of auto, on, off, got "yes"`,
			},
		},
		{
			name: "program registry",
			env:  map[string]string{"PROGRAM_MAX_BYTES": "0", "PROGRAM_MAX_VERSIONS": "0"},
			want: []string{"PROGRAM_MAX_BYTES: must be at least 1, got 0", "PROGRAM_MAX_VERSIONS: must be at least 1, got 0"},
		},
		{
			name: "temperature NaN",
			env:  map[string]string{"LM_TEMPERATURE": "NaN"},
			want: []string{"LM_TEMPERATURE: must be between 0 and 2, got NaN"},
		},
		{
			name: "cache sizes",
			env:  map[string]string{"CACHE_DISK_SIZE": "0", "CACHE_MEMORY_ENTRIES": "0"},
			want: []string{
				"CACHE_DISK_SIZE: must be at least 1, got 0",
				"CACHE_MEMORY_ENTRIES: must be at least 1, got 0",
			},
		},
		{
			name: "disabled caches may be empty",
			env: map[string]string{
				"CACHE_DISK_ENABLED": "false", "CACHE_DISK_SIZE": "0",
				"CACHE_MEMORY_ENABLED": "false", "CACHE_MEMORY_ENTRIES": "0",
			},
		},
		{
			name: "batch values",
			env: map[string]string{
				"BATCH_MAX_ITEMS": "0", "BATCH_MAX_BYTES": "0", "BATCH_OWNER_SHARE": "1.5",
				"BATCH_RESULT_TTL": "0s", "BATCH_RESULTS_MAX_WAIT": "0s",
			},
			want: []string{
				"BATCH_MAX_ITEMS: must be at least 1, got 0",
				"BATCH_MAX_BYTES: must be at least 1, got 0",
				"BATCH_RESULT_TTL: must be positive, got 0s",
				"BATCH_RESULTS_MAX_WAIT: must be positive, got 0s",
				"BATCH_OWNER_SHARE: must be a fraction above 0 and at most 1, got 1.5",
			},
		},
		{
			name: "owner share zero",
			env:  map[string]string{"BATCH_OWNER_SHARE": "0"},
			want: []string{"BATCH_OWNER_SHARE: must be a fraction above 0 and at most 1, got 0"},
		},
		{
			name: "admin keys share the name space and keys with API keys",
			env: map[string]string{
				"API_KEYS":       "alice:alice-key,bob:bob-key",
				"ADMIN_API_KEYS": "alice:other-key,ops:sha256:" + hexSum("bob-key"),
			},
			want: []string{
				`ADMIN_API_KEYS: name "alice" is also in API_KEYS: key names share one owner namespace`,
				`ADMIN_API_KEYS: "ops" has the same key as "bob" in API_KEYS`,
			},
		},
		{
			name: "cors",
			env:  map[string]string{"CORS_ORIGINS": "*,https://ok.example.com,https://*.example.com,https://x.example.com/,ftp://f,null"},
			want: []string{
				`CORS_ORIGINS: must not contain "*": credentials are allowed, so list each origin, got "*"`,
				`CORS_ORIGINS: must not contain "*": credentials are allowed, so list each origin, got "https://*.example.com"`,
				`CORS_ORIGINS: each origin must be scheme://host[:port], with no path or trailing slash, got "https://x.example.com/"`,
				`CORS_ORIGINS: each origin must be scheme://host[:port], with no path or trailing slash, got "ftp://f"`,
				`CORS_ORIGINS: each origin must be scheme://host[:port], with no path or trailing slash, got "null"`,
			},
		},
		{
			name: "limits",
			env: map[string]string{
				"RATE_LIMIT_RPS": "-1", "RATE_LIMIT_BURST": "-1", "TOKEN_BUDGET_PER_DAY": "-1",
				"SSE_MAX_STREAMS_PER_KEY": "0", "WAIT_MAX_PER_KEY": "0", "AUTH_FAILURES_PER_MINUTE": "0",
			},
			want: []string{
				"RATE_LIMIT_RPS: must be a number of requests per second, 0 for off, got -1",
				"RATE_LIMIT_BURST: must be at least 0, got -1",
				"TOKEN_BUDGET_PER_DAY: must be at least 0, got -1",
				"SSE_MAX_STREAMS_PER_KEY: must be at least 1, got 0",
				"WAIT_MAX_PER_KEY: must be at least 1, got 0",
				"AUTH_FAILURES_PER_MINUTE: must be at least 1, got 0",
			},
		},
		{
			name: "trusted proxies",
			env:  map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,::1,2001:db8::/32,proxy.internal,10.0.0.1/33"},
			want: []string{
				`TRUSTED_PROXIES: each entry must be an IP address or a CIDR such as 10.0.0.0/8, got "proxy.internal"`,
				`TRUSTED_PROXIES: each entry must be an IP address or a CIDR such as 10.0.0.0/8, got "10.0.0.1/33"`,
			},
		},
		{
			name: "rate infinite",
			env:  map[string]string{"RATE_LIMIT_RPS": "+Inf"},
			want: []string{"RATE_LIMIT_RPS: must be a number of requests per second, 0 for off, got +Inf"},
		},
		{
			name: "log",
			env:  map[string]string{"LOG_LEVEL": "verbose", "LOG_FORMAT": "text"},
			want: []string{
				`LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal, disabled, got "verbose"`,
				`LOG_FORMAT: must be json or console, got "text"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse(MapLookup(tt.env), nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got []string
			if err := cfg.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() mismatch (-want +got):\n%s", diff)
			}
			_, _, loadErr := Load(MapLookup(tt.env), nil)
			if (loadErr != nil) != (len(tt.want) > 0) {
				t.Errorf("Load() error = %v, want one: %v", loadErr, len(tt.want) > 0)
			}
		})
	}
}

func TestValidateErrorsAreTyped(t *testing.T) {
	t.Parallel()
	cfg, err := Parse(MapLookup(map[string]string{"JOB_TIMEOUT": "1500ms", "LOG_FORMAT": "xml"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	var vars []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ve *Error
		if !errors.As(e, &ve) {
			t.Fatalf("%v is not a *config.Error", e)
		}
		vars = append(vars, ve.Var)
	}
	if diff := cmp.Diff([]string{"JOB_TIMEOUT", "LOG_FORMAT"}, vars); diff != "" {
		t.Errorf("variables mismatch (-want +got):\n%s", diff)
	}
}
