package lmclient

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/qaqueue/qaqueue/config"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// Config sets up a Client. The zero value calls openai/gpt-4o-mini with no
// cache and no rate limit: a client opts into each cache layer (the disk and
// Redis layers need a directory or a Redis that only the environment names),
// and the service turns them on (CACHE_*_ENABLED, which cmd maps here). Every
// other zero field takes its variable's default from package config.
type Config struct {
	// Model is the DSPy model string, provider/model (DSPY_MODEL). It keys
	// the cache and usage. Default [config.DefaultModel].
	Model string
	// APIBase overrides the provider's base URL (LM_API_BASE). Default: the
	// provider's variable, then its public endpoint.
	APIBase string
	// APIKey overrides the provider's key variable (LM_API_KEY).
	APIKey string
	// AzureAPIVersion is the api-version of an azure/ model. Default:
	// AZURE_API_VERSION through the lookup function.
	AzureAPIVersion string
	// LookupEnv resolves provider variables (OPENAI_API_KEY, …); the client
	// never reads the environment itself. Default: nothing is set.
	LookupEnv func(string) (string, bool)

	// Temperature is sent when set (LM_TEMPERATURE). Default nil: unset, as
	// DSPy 3.x; it is still part of the cache key as null.
	Temperature *float64
	// MaxTokens is sent when set (LM_MAX_TOKENS), as max_completion_tokens
	// for OpenAI reasoning models. Default nil: unset.
	MaxTokens *int
	// Timeout bounds one call, streaming included (LM_TIMEOUT). Default
	// [config.DefaultLMTimeout].
	Timeout time.Duration

	// MemoryEnabled turns on the in-process LRU layer. Default false.
	MemoryEnabled bool
	// MemoryEntries caps the LRU layer (CACHE_MEMORY_ENTRIES). Default
	// [config.DefaultCacheMemoryEntries].
	MemoryEntries int
	// DiskEnabled turns on the SQLite layer in Dir. Default false.
	DiskEnabled bool
	// DiskSizeBytes caps the bytes of stored entries of one namespace; the
	// least recently used are evicted beyond it (CACHE_DISK_SIZE). Default
	// [config.DefaultCacheDiskSize].
	DiskSizeBytes int64
	// Dir holds the disk layer's databases, one per namespace directory;
	// required when DiskEnabled.
	Dir string
	// CacheNamespace is the part of the disk and Redis layers this client
	// reads and writes (see EndpointNamespace). Default: a hash of Model and
	// the resolved base URL, so two servers answering to one model name
	// never share answers.
	CacheNamespace string
	// RedisEnabled turns on the shared Redis layer (Deps.CacheRedis, else
	// Deps.Redis). Default false.
	RedisEnabled bool
	// RedisTTL is every Redis entry's time to live (CACHE_REDIS_TTL). Default
	// [config.DefaultCacheRedisTTL].
	RedisTTL time.Duration

	// RPM and TPM are the fleet-wide requests and tokens per minute toward
	// the provider, shared through Deps.Redis and spread evenly over the
	// minute (see paceBurst). Default 0: no limit.
	RPM int
	TPM int
	// MaxWait bounds how long a call waits for rate-limit capacity or a
	// provider cool-down; beyond it Complete returns *RateLimitedError
	// (LM_RATE_MAX_WAIT). Default [config.DefaultLMRateMaxWait].
	MaxWait time.Duration

	// StructuredOutputs is "auto", "on" or "off" (LM_STRUCTURED_OUTPUTS):
	// (*Client).SupportsResponseSchema follows the package's
	// SupportsResponseSchema rule for Model (auto), or is always true (on)
	// or false (off). Default [config.DefaultLMStructuredOutputs].
	StructuredOutputs string
}

// Deps are the Client's collaborators.
type Deps struct {
	// Redis carries the shared rate limiter and the provider cool-down. It is
	// required when RPM or TPM is set; without it a 429 cool-down is local.
	Redis redis.UniversalClient
	// CacheRedis holds the Redis cache layer (CACHE_REDIS_URL may point at an
	// LRU-evicting Redis of its own). Default: Redis.
	CacheRedis redis.UniversalClient
	// Logger receives warnings of the cache layers and the limiter's Redis
	// (both degrade instead of failing a call). Default (nil): nothing is
	// logged.
	Logger *zerolog.Logger
	// HTTPClient makes the calls. Default: a client with a pooled transport
	// sized for thousands of concurrent calls (see NewTransport).
	HTTPClient *http.Client
	// Registerer receives the client's metrics. Default: none.
	Registerer prometheus.Registerer
	// Tracing traces each Complete as a "chat <model>" span (tracing.go);
	// nil when tracing is off: no span is started.
	Tracing trace.TracerProvider
}

// WithDefaults returns c with each zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Model = cmp.Or(c.Model, config.DefaultModel)
	c.Timeout = cmp.Or(c.Timeout, config.DefaultLMTimeout)
	c.MemoryEntries = cmp.Or(c.MemoryEntries, config.DefaultCacheMemoryEntries)
	c.DiskSizeBytes = cmp.Or(c.DiskSizeBytes, int64(config.DefaultCacheDiskSize))
	c.RedisTTL = cmp.Or(c.RedisTTL, config.DefaultCacheRedisTTL)
	c.MaxWait = cmp.Or(c.MaxWait, config.DefaultLMRateMaxWait)
	c.StructuredOutputs = cmp.Or(c.StructuredOutputs, config.DefaultLMStructuredOutputs)
	return c
}

func (c Config) validate(d Deps) error {
	var errs []error
	if c.Timeout < 0 {
		errs = append(errs, errors.New("LM_TIMEOUT must be positive"))
	}
	if c.MaxTokens != nil && *c.MaxTokens <= 0 {
		errs = append(errs, fmt.Errorf("LM_MAX_TOKENS must be positive, got %d", *c.MaxTokens))
	}
	if c.Temperature != nil && (*c.Temperature < 0 || *c.Temperature > 2) {
		errs = append(errs, fmt.Errorf("LM_TEMPERATURE must be within [0, 2], got %g", *c.Temperature))
	}
	switch c.StructuredOutputs {
	case "", StructuredAuto, StructuredOn, StructuredOff:
	default:
		errs = append(errs, fmt.Errorf("LM_STRUCTURED_OUTPUTS must be auto, on or off, got %q", c.StructuredOutputs))
	}
	if c.MemoryEntries < 0 {
		errs = append(errs, errors.New("CACHE_MEMORY_ENTRIES must be positive"))
	}
	if c.DiskEnabled && c.Dir == "" {
		errs = append(errs, errors.New("CACHE_DIR must be set when CACHE_DISK_ENABLED is true"))
	}
	if c.DiskSizeBytes < 0 {
		errs = append(errs, errors.New("CACHE_DISK_SIZE must be positive"))
	}
	if c.RedisTTL < 0 {
		errs = append(errs, errors.New("CACHE_REDIS_TTL must be positive"))
	}
	if c.CacheNamespace != "" {
		if err := ValidateNamespace(c.CacheNamespace); err != nil {
			errs = append(errs, err)
		}
	}
	if c.RedisEnabled && d.CacheRedis == nil && d.Redis == nil {
		errs = append(errs, errors.New("CACHE_REDIS_ENABLED needs a Redis client"))
	}
	if c.RPM < 0 || c.TPM < 0 {
		errs = append(errs, errors.New("LM_RPM and LM_TPM must not be negative"))
	}
	if (c.RPM > 0 || c.TPM > 0) && d.Redis == nil {
		errs = append(errs, errors.New("LM_RPM and LM_TPM need a Redis client"))
	}
	if c.MaxWait < 0 {
		errs = append(errs, errors.New("the rate-limit MaxWait must not be negative"))
	}
	if IsReasoningModel(c.Model) {
		// DSPy tests Python truthiness: 0 passes both checks.
		if c.Temperature != nil && *c.Temperature != 0 && *c.Temperature != 1 {
			errs = append(errs, fmt.Errorf("%s is an OpenAI reasoning model: LM_TEMPERATURE must be unset or 1.0, got %g", c.Model, *c.Temperature))
		}
		if c.MaxTokens != nil && *c.MaxTokens < 16000 {
			errs = append(errs, fmt.Errorf("%s is an OpenAI reasoning model: LM_MAX_TOKENS must be unset or at least 16000, got %d", c.Model, *c.MaxTokens))
		}
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return &ConfigError{Msg: "validate lm config: " + strings.Join(msgs, "; ")}
	}
	return nil
}
