package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Validate checks every value and how they fit together, and returns all
// problems joined, each an [*Error] naming its variable. Beyond each value's
// own range it enforces the timeout nesting of DESIGN.md:
//
//	LMAttemptsPerRun × LM_TIMEOUT + LM_RATE_MAX_WAIT < JOB_TIMEOUT < SHUTDOWN_TIMEOUT
//	PREDICT_TIMEOUT ≤ JOB_TIMEOUT
//
// so a job's LM calls end before asynq cancels the job, and a stopping
// worker lets a running job finish. (SHUTDOWN_TIMEOUT must also stay below
// the container's grace period, which only the deployment knows.)
func (c *Config) Validate() error {
	var v validator
	c.validateHTTP(&v)
	c.validateRedis(&v)
	c.validateQueue(&v)
	c.validateLM(&v)
	c.validateCache(&v)
	c.validateBatch(&v)
	c.validateSecurity(&v)
	c.validateLog(&v)
	c.validateNesting(&v)
	return errors.Join(v.errs...)
}

func (c *Config) validateHTTP(v *validator) {
	v.port("PORT", c.HTTP.Port)
	v.positive("PREDICT_TIMEOUT", c.HTTP.PredictTimeout)
	v.atLeast("MAX_BODY_BYTES", int64(c.HTTP.MaxBodyBytes), 1)
	v.atLeast("MAX_QUESTION_CHARS", int64(c.HTTP.MaxQuestionChars), 1)
	v.atLeast("MAX_INPUT_BYTES", int64(c.HTTP.MaxInputBytes), 1)
}

func (c *Config) validateRedis(v *validator) {
	v.redisURL("REDIS_URL", c.Redis.URL)
	for _, addr := range c.Redis.SentinelAddrs {
		if err := checkHostPort(addr); err != nil {
			v.add("REDIS_SENTINEL_ADDRS", "%v, got %q", err, addr)
		}
	}
	switch {
	case len(c.Redis.SentinelAddrs) > 0 && c.Redis.SentinelMaster == "":
		v.add("REDIS_SENTINEL_MASTER", "must name the master when REDIS_SENTINEL_ADDRS is set")
	case len(c.Redis.SentinelAddrs) == 0 && c.Redis.SentinelMaster != "":
		v.add("REDIS_SENTINEL_ADDRS", "must list the Sentinels when REDIS_SENTINEL_MASTER is set")
	}
	v.atLeast("REDIS_POOL_SIZE", int64(c.Redis.PoolSize), 0)
}

func (c *Config) validateQueue(v *validator) {
	q := c.Queue
	v.atLeast("WORKER_CONCURRENCY", int64(q.WorkerConcurrency), 1)
	v.atLeast("BATCH_CONCURRENCY", int64(q.BatchConcurrency), 1)
	v.positive("QUEUE_POLL_INTERVAL", q.PollInterval)
	v.atLeast("QUEUE_MAX_PENDING", int64(q.MaxPending), 1)
	v.wholeSeconds("INTERACTIVE_MAX_WAIT", q.InteractiveMaxWait)
	v.wholeSeconds("JOB_TIMEOUT", q.JobTimeout)
	v.atLeast("MAX_RETRIES", int64(q.MaxRetries), 0)
	v.wholeSeconds("RESULT_TTL", q.ResultTTL)
	v.wholeSeconds("IDEMPOTENCY_TTL", q.IdempotencyTTL)
	v.positive("USAGE_RETENTION", q.UsageRetention)
	v.positive("SHUTDOWN_TIMEOUT", q.ShutdownTimeout)
	if q.WorkerLivenessTTL < time.Second {
		v.add("WORKER_LIVENESS_TTL", "must be at least 1s (renewed every third of it), got %s", formatDuration(q.WorkerLivenessTTL))
	}
	if v.port("WORKER_METRICS_PORT", q.WorkerMetricsPort) &&
		q.WorkerMetricsPort != 0 && q.WorkerMetricsPort == c.HTTP.Port {
		v.add("WORKER_METRICS_PORT", "must differ from PORT (%d): `qa dev` serves both in one process", c.HTTP.Port)
	}
}

func (c *Config) validateLM(v *validator) {
	l := c.LM
	if p, m, ok := strings.Cut(l.Model, "/"); !ok || p == "" || m == "" {
		v.add("DSPY_MODEL", "must be provider/model, such as openai/gpt-4o-mini, got %q", l.Model)
	}
	if l.APIBase != "" {
		if u, err := url.Parse(l.APIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add("LM_API_BASE", "must be an http:// or https:// URL, got %s", quoteValue(RedactURL(l.APIBase)))
		}
	}
	if t := l.Temperature; t != nil && !(*t >= 0 && *t <= 2) {
		v.add("LM_TEMPERATURE", "must be between 0 and 2, got %v", *t)
	}
	if l.MaxTokens != nil {
		v.atLeast("LM_MAX_TOKENS", int64(*l.MaxTokens), 1)
	}
	v.positive("LM_TIMEOUT", l.Timeout)
	v.atLeast("PROGRAM_MAX_BYTES", int64(l.ProgramMaxBytes), 1)
	v.atLeast("PROGRAM_MAX_VERSIONS", int64(l.ProgramMaxVersions), 1)
	v.atLeast("LM_RPM", int64(l.RPM), 0)
	v.atLeast("LM_TPM", int64(l.TPM), 0)
	if l.RateMaxWait < 0 {
		v.add("LM_RATE_MAX_WAIT", "must not be negative, got %s", formatDuration(l.RateMaxWait))
	}
	switch l.StructuredOutputs {
	case "auto", "on", "off":
	default:
		v.add("LM_STRUCTURED_OUTPUTS", "must be one of auto, on, off, got %q", l.StructuredOutputs)
	}
}

func (c *Config) validateCache(v *validator) {
	k := c.Cache
	if k.DiskEnabled {
		v.atLeast("CACHE_DISK_SIZE", int64(k.DiskSize), 1)
	}
	if k.MemoryEnabled {
		v.atLeast("CACHE_MEMORY_ENTRIES", int64(k.MemoryEntries), 1)
	} else {
		v.atLeast("CACHE_MEMORY_ENTRIES", int64(k.MemoryEntries), 0)
	}
	v.redisURL("CACHE_REDIS_URL", k.RedisURL)
	v.positive("CACHE_REDIS_TTL", k.RedisTTL)
}

func (c *Config) validateBatch(v *validator) {
	b := c.Batch
	v.atLeast("BATCH_MAX_ITEMS", int64(b.MaxItems), 1)
	v.atLeast("BATCH_MAX_BYTES", int64(b.MaxBytes), 1)
	v.wholeSeconds("BATCH_RESULT_TTL", b.ResultTTL)
	v.wholeSeconds("BATCH_COMPLETION_WINDOW", b.CompletionWindow)
	v.positive("BATCH_RESULTS_MAX_WAIT", b.ResultsMaxWait)
	if !(b.OwnerShare > 0 && b.OwnerShare <= 1) {
		v.add("BATCH_OWNER_SHARE", "must be a fraction above 0 and at most 1, got %v", b.OwnerShare)
	}
	v.atLeast("BATCH_UPLOADS_PER_PROCESS", int64(b.UploadsPerProcess), 1)
	v.atLeast("BATCH_UPLOADS_PER_KEY", int64(b.UploadsPerKey), 1)
	v.atLeast("BATCH_UPLOAD_MIN_RATE", int64(b.UploadMinRate), 1)
	v.positive("BATCH_UPLOAD_GRACE", b.UploadGrace)
	v.atLeast("BATCH_QUOTA_ITEMS_PER_KEY", b.QuotaItemsPerKey, 0)
	v.atLeast("BATCH_QUOTA_BYTES_PER_KEY", int64(b.QuotaBytesPerKey), 0)
	v.atLeast("PROVIDER_MAX_REQUESTS", int64(b.ProviderMaxRequests), 1)
	v.atLeast("PROVIDER_MAX_BYTES", int64(b.ProviderMaxBytes), 1)
	if v.positive("PROVIDER_POLL_INTERVAL", b.ProviderPollInterval) && b.ProviderPollMax < b.ProviderPollInterval {
		v.add("PROVIDER_POLL_MAX", "must be at least PROVIDER_POLL_INTERVAL (%v), got %v", b.ProviderPollInterval, b.ProviderPollMax)
	}
	if f := b.ProviderFallback; f != "live" && f != "provider" {
		v.add("PROVIDER_FALLBACK", "must be one of live, provider, got %q", f)
	}
	if u := b.ProviderUnfinished; u != "live" && u != "fail" {
		v.add("PROVIDER_UNFINISHED", "must be one of live, fail, got %q", u)
	}
}

func (c *Config) validateSecurity(v *validator) {
	s := c.Security
	for _, admin := range s.AdminAPIKeys {
		for _, user := range s.APIKeys {
			switch {
			case admin.Name == user.Name:
				v.add("ADMIN_API_KEYS", "name %q is also in API_KEYS: key names share one owner namespace", admin.Name)
			case admin.SHA256 == user.SHA256:
				v.add("ADMIN_API_KEYS", "%q has the same key as %q in API_KEYS", admin.Name, user.Name)
			}
		}
	}
	for _, o := range s.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			v.add("CORS_ORIGINS", "%v, got %q", err, o)
		}
	}
	if !(s.RateLimitRPS >= 0 && s.RateLimitRPS <= 1e9) {
		v.add("RATE_LIMIT_RPS", "must be a number of requests per second, 0 for off, got %v", s.RateLimitRPS)
	}
	v.atLeast("RATE_LIMIT_BURST", int64(s.RateLimitBurst), 0)
	v.atLeast("TOKEN_BUDGET_PER_DAY", s.TokenBudgetPerDay, 0)
	v.atLeast("SSE_MAX_STREAMS_PER_KEY", int64(s.SSEMaxStreamsPerKey), 1)
	v.atLeast("WAIT_MAX_PER_KEY", int64(s.WaitMaxPerKey), 1)
	for _, p := range s.TrustedProxies {
		if !ipOrCIDR(p) {
			v.add("TRUSTED_PROXIES", "each entry must be an IP address or a CIDR such as 10.0.0.0/8, got %q", p)
		}
	}
	v.atLeast("AUTH_FAILURES_PER_MINUTE", int64(s.AuthFailuresPerMinute), 1)
}

// ipOrCIDR accepts what gin's SetTrustedProxies does: an address, or a
// network in CIDR notation.
func ipOrCIDR(s string) bool {
	if strings.Contains(s, "/") {
		_, _, err := net.ParseCIDR(s)
		return err == nil
	}
	return net.ParseIP(s) != nil
}

func (c *Config) validateLog(v *validator) {
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error", "fatal", "disabled":
	default:
		v.add("LOG_LEVEL", "must be one of trace, debug, info, warn, error, fatal, disabled, got %q", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		v.add("LOG_FORMAT", "must be json or console, got %q", c.Log.Format)
	}
}

// validateNesting checks the timeouts against each other, once each is
// valid on its own, so a bad value is reported once rather than again in
// every relation it takes part in.
func (c *Config) validateNesting(v *validator) {
	q, l := c.Queue, c.LM
	if q.JobTimeout <= 0 || q.JobTimeout%time.Second != 0 {
		return
	}
	if l.Timeout > 0 && l.RateMaxWait >= 0 {
		need := LMAttemptsPerRun*l.Timeout + l.RateMaxWait
		if q.JobTimeout <= need {
			v.add("JOB_TIMEOUT", "must exceed %d LM attempts × LM_TIMEOUT (%s) + LM_RATE_MAX_WAIT (%s) = %s, got %s",
				LMAttemptsPerRun, formatDuration(l.Timeout), formatDuration(l.RateMaxWait),
				formatDuration(need), formatDuration(q.JobTimeout))
		}
	}
	if q.ShutdownTimeout > 0 && q.ShutdownTimeout <= q.JobTimeout {
		v.add("SHUTDOWN_TIMEOUT", "must exceed JOB_TIMEOUT (%s) so running jobs can finish, got %s",
			formatDuration(q.JobTimeout), formatDuration(q.ShutdownTimeout))
	}
	if c.HTTP.PredictTimeout > q.JobTimeout {
		v.add("PREDICT_TIMEOUT", "must not exceed JOB_TIMEOUT (%s), got %s",
			formatDuration(q.JobTimeout), formatDuration(c.HTTP.PredictTimeout))
	}
}

// validator collects problems.
type validator struct{ errs []error }

func (v *validator) add(name, format string, args ...any) {
	v.errs = append(v.errs, varErr(name, format, args...))
}

func (v *validator) atLeast(name string, n, least int64) {
	if n < least {
		v.add(name, "must be at least %d, got %d", least, n)
	}
}

// port accepts 0 (a free port) to 65535 and reports whether p is valid.
func (v *validator) port(name string, p int) bool {
	if p < 0 || p > 65535 {
		v.add(name, "must be a port from 0 to 65535, got %d", p)
		return false
	}
	return true
}

// positive reports whether d is above zero.
func (v *validator) positive(name string, d time.Duration) bool {
	if d <= 0 {
		v.add(name, "must be positive, got %s", formatDuration(d))
		return false
	}
	return true
}

// wholeSeconds checks a positive duration that asynq (or a Redis EXPIRE)
// stores in whole seconds, where 1500ms would silently become 1s, and a
// timeout under a second would become none at all.
func (v *validator) wholeSeconds(name string, d time.Duration) {
	if v.positive(name, d) && d%time.Second != 0 {
		v.add(name, "must be a whole number of seconds (asynq stores seconds), got %s", formatDuration(d))
	}
}

func (v *validator) redisURL(name string, raw SecretURL) {
	if raw == "" {
		return
	}
	if err := checkRedisURL(raw.Reveal()); err != nil {
		v.add(name, "%v, got %s", err, quoteValue(raw.String()))
	}
}

// checkRedisURL checks what go-redis's ParseURL will need, without
// importing it: config stays free of client libraries.
func checkRedisURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("must be a URL such as redis://localhost:6379/0")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return errors.New("must start with redis:// or rediss:// (TLS)")
	}
	if u.Hostname() == "" {
		return errors.New("must name a host, as in redis://localhost:6379/0")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("must have a port from 1 to 65535")
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return errors.New("must end with a database number (/0) or nothing")
		}
	}
	return nil
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return errors.New("each address must be host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("each port must be from 1 to 65535")
	}
	return nil
}

// checkOrigin accepts what browsers send in Origin: scheme://host[:port].
func checkOrigin(o string) error {
	if strings.Contains(o, "*") {
		return errors.New(`must not contain "*": credentials are allowed, so list each origin`)
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return fmt.Errorf("each origin must be scheme://host[:port], with no path or trailing slash")
	}
	return nil
}
