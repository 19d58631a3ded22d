package api

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/qaqueue/qaqueue/config"
)

// Config configures the API. The zero value of every field means its default
// (a field set by a variable takes that variable's default from package
// config); New fills the defaults in and validates the result.
type Config struct {
	// MaxBodyBytes caps the body of /v1/jobs and /predict requests; larger
	// bodies get 413 (MAX_BODY_BYTES). Default [config.DefaultMaxBodyBytes].
	MaxBodyBytes int64
	// MaxBatchBodyBytes caps the body of POST /batch. Default 16 MiB.
	MaxBatchBodyBytes int64
	// MaxQuestionChars is the longest question accepted, counted in
	// characters (Unicode code points, as Python's len); longer ones get 422
	// (MAX_QUESTION_CHARS). Default [config.DefaultMaxQuestionChars].
	MaxQuestionChars int
	// MaxInputBytes caps the bytes of one job's or batch item's inputs, as
	// JSON (MAX_INPUT_BYTES): a line of an upload may be that plus 4 KiB
	// for custom_id and the JSON around it, and a longer one is refused
	// while it is read.
	// Default [config.DefaultMaxInputBytes].
	MaxInputBytes int64
	// MaxBatchItems is the most questions one POST /batch may carry (the
	// seed's limit). Default 100.
	MaxBatchItems int
	// PredictTimeout is how long /predict, /predict/stream and /batch wait
	// for their jobs before answering 504 with the job id
	// (PREDICT_TIMEOUT). Default [config.DefaultPredictTimeout].
	PredictTimeout time.Duration
	// MaxWait caps GET /v1/jobs/{id}?wait=; longer waits are shortened to
	// it. Default 60s.
	MaxWait time.Duration
	// Heartbeat is the interval of SSE comment heartbeats; the job record is
	// re-checked at each one. Default 15s.
	Heartbeat time.Duration
	// ReconnectDelay is the retry: hint, in the final frame sent to SSE
	// clients when the server shuts down. Default 1s.
	ReconnectDelay time.Duration
	// PollAfter is the Retry-After of a 202: when a client should look at
	// its job first. Default 1s.
	PollAfter time.Duration
	// BusyRetryAfter is the Retry-After of a 503 for a full queue, and of a
	// 429 over a cap on requests in progress (open streams, long polls,
	// uploads). Default 5s.
	BusyRetryAfter time.Duration
	// UnavailableRetryAfter is the Retry-After of a 503 when Redis is
	// unreachable. Default 5s.
	UnavailableRetryAfter time.Duration
	// RedisTimeout bounds the Redis work of one request that does not wait
	// for a job (reads, submits, subscribing), so an unreachable Redis gives
	// 503 rather than a hang. Default 5s.
	RedisTimeout time.Duration
	// WriteTimeout bounds writing a response that is not a stream: the
	// server sets it per request, after any wait (streams set a deadline
	// per frame instead). Default 30s.
	WriteTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's headers; ReadTimeout
	// bounds reading its body, set per request (batch uploads have a
	// minimum rate instead: BatchUploadMinRate); IdleTimeout bounds a
	// keep-alive connection between requests. Defaults 10s, 30s and 120s.
	ReadTimeout, ReadHeaderTimeout, IdleTimeout time.Duration
	// DisableStreaming turns POST /predict/stream off (404), as
	// ENABLE_STREAMING=false. Default false: streaming is on.
	DisableStreaming bool
	// DisableMetrics makes GET /metrics answer 404 {"detail": "Metrics
	// disabled"}, as ENABLE_METRICS=false. Default false.
	DisableMetrics bool
	// MetricsFlushInterval is how often this process adds its counts to the
	// global JSON summary in Redis. Default 1s.
	MetricsFlushInterval time.Duration
	// DisableMonitoring leaves asynqmon unmounted. Default false: it is
	// served at /monitoring/.
	DisableMonitoring bool
	// MonitoringWritable lets the dashboard delete, run and archive tasks
	// (MONITORING_READONLY=false). Default false: read-only.
	MonitoringWritable bool
	// MonitoringFormatLimit is how many bytes of a question or answer the
	// dashboard shows. Default 4096.
	MonitoringFormatLimit int
	// PrometheusURL, when set, gives the dashboard its Metrics page: asynqmon
	// queries this Prometheus for the asynq_* series our /metrics exports
	// (MONITORING_PROMETHEUS_URL). Default unset.
	PrometheusURL string

	// Batches (/v1/batches; batches.go).

	// BatchMaxItems caps the items of one upload (413 beyond;
	// BATCH_MAX_ITEMS). Default [config.DefaultBatchMaxItems].
	BatchMaxItems int
	// BatchMaxBytes caps one upload (413 beyond; BATCH_MAX_BYTES). Default
	// [config.DefaultBatchMaxBytes].
	BatchMaxBytes int64
	// BatchResultsMaxWait bounds one GET /v1/batches/{id}/results?wait=true:
	// past it the download ends with a line saying where to resume
	// (BATCH_RESULTS_MAX_WAIT). Default [config.DefaultBatchResultsMaxWait].
	BatchResultsMaxWait time.Duration
	// BatchUploadsPerProcess and BatchUploadsPerKey cap the uploads read at
	// once by this process, and by one key across every replica; beyond,
	// 429 with Retry-After (BATCH_UPLOADS_PER_PROCESS,
	// BATCH_UPLOADS_PER_KEY). Defaults [config.DefaultBatchUploadsPerProcess]
	// and [config.DefaultBatchUploadsPerKey].
	BatchUploadsPerProcess, BatchUploadsPerKey int
	// BatchUploadMinRate is the slowest an upload's body may arrive, in
	// bytes per second, after BatchUploadGrace: its read deadline is the
	// grace plus the time its bytes so far take at this rate; past it, 408
	// (BATCH_UPLOAD_MIN_RATE, BATCH_UPLOAD_GRACE). Defaults
	// [config.DefaultBatchUploadMinRate] and [config.DefaultBatchUploadGrace].
	BatchUploadMinRate int64
	BatchUploadGrace   time.Duration
	// NoProviderBatches refuses POST /v1/batches?mode=provider with a 422
	// naming mode: set when the workers have no provider batch API to
	// offload a batch's calls to (PROVIDER_BATCHES=false, or a provider
	// without one). Default false: provider mode is offered.
	NoProviderBatches bool

	// Security (issue 8; see auth.go, cors.go, ratelimit.go, limits.go).

	// APIKeys are the keys clients send as "Authorization: Bearer <key>"
	// (API_KEYS); a key's name owns the jobs it creates. Default empty:
	// anonymous mode, where nothing is authenticated and everything belongs
	// to the owner "" (New logs a warning).
	APIKeys config.APIKeys
	// AdminAPIKeys open /metrics and /monitoring/ (ADMIN_API_KEYS), as
	// Bearer or as the password of Basic auth. Default empty: those pages
	// are open in anonymous mode and closed (401) otherwise.
	AdminAPIKeys config.APIKeys
	// MetricsPublic serves /metrics without an admin key (METRICS_PUBLIC).
	// Default false.
	MetricsPublic bool
	// CORSOrigins are the origins ("scheme://host[:port]") allowed to call
	// the API from a browser, with credentials (CORS_ORIGINS). "*" is
	// refused. Default empty: CORS off.
	CORSOrigins []string
	// RateLimitRPS is the requests per second one key (in anonymous mode,
	// one client address) may make, shared across replicas through Redis
	// (RATE_LIMIT_RPS). Default 0: no limit.
	RateLimitRPS float64
	// RateLimitBurst is how many requests may come at once above
	// RateLimitRPS (RATE_LIMIT_BURST). Default
	// [config.DefaultRateLimitBurst] of RateLimitRPS: rounded up, at least 1.
	RateLimitBurst int
	// TokenBudgetPerDay caps the LM tokens one key's completed jobs may use
	// per UTC day; once reached, new work gets 429 until midnight UTC
	// (TOKEN_BUDGET_PER_DAY). Default 0: no budget.
	TokenBudgetPerDay int64
	// MaxStreamsPerKey caps the streams one key holds open across all API
	// replicas: event streams and results downloads that wait
	// (SSE_MAX_STREAMS_PER_KEY). Default [config.DefaultSSEMaxStreamsPerKey].
	MaxStreamsPerKey int
	// MaxWaitsPerKey caps the GET /v1/jobs/{id}?wait= long polls one key
	// holds across all API replicas, counted once a poll has waited a second
	// (WAIT_MAX_PER_KEY). Default [config.DefaultWaitMaxPerKey].
	MaxWaitsPerKey int
	// TrustedProxies are the proxies (IPs or CIDRs) whose X-Forwarded-For
	// names the client's address (TRUSTED_PROXIES). Default none: the
	// connection's address.
	TrustedProxies []string
	// AuthFailuresPerMinute is how many failed authentications one client
	// address may make a minute, counted per process, before its requests
	// get 429 (AUTH_FAILURES_PER_MINUTE; authlimit.go). Default
	// [config.DefaultAuthFailuresPerMinute].
	AuthFailuresPerMinute int
	// AuthFailureAddresses is how many client addresses those counts are
	// kept for; beyond, the one that failed least recently is forgotten.
	// Default 10000 (about 3 MB).
	AuthFailureAddresses int
	// LogQuestions lets question, answer and LM text reach the logs
	// (LOG_QUESTIONS): a failed job's reason in the access log of /predict.
	// Default false.
	LogQuestions bool
}

// WithDefaults returns c with each zero field set to its default.
func (c Config) WithDefaults() Config {
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, int64(config.DefaultMaxBodyBytes))
	c.MaxBatchBodyBytes = cmp.Or(c.MaxBatchBodyBytes, 16<<20)
	c.MaxQuestionChars = cmp.Or(c.MaxQuestionChars, config.DefaultMaxQuestionChars)
	c.MaxInputBytes = cmp.Or(c.MaxInputBytes, int64(config.DefaultMaxInputBytes))
	c.MaxBatchItems = cmp.Or(c.MaxBatchItems, 100)
	c.PredictTimeout = cmp.Or(c.PredictTimeout, config.DefaultPredictTimeout)
	c.MaxWait = cmp.Or(c.MaxWait, 60*time.Second)
	c.Heartbeat = cmp.Or(c.Heartbeat, 15*time.Second)
	c.ReconnectDelay = cmp.Or(c.ReconnectDelay, time.Second)
	c.PollAfter = cmp.Or(c.PollAfter, time.Second)
	c.BusyRetryAfter = cmp.Or(c.BusyRetryAfter, 5*time.Second)
	c.UnavailableRetryAfter = cmp.Or(c.UnavailableRetryAfter, 5*time.Second)
	c.RedisTimeout = cmp.Or(c.RedisTimeout, 5*time.Second)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, 30*time.Second)
	c.ReadTimeout = cmp.Or(c.ReadTimeout, 30*time.Second)
	c.ReadHeaderTimeout = cmp.Or(c.ReadHeaderTimeout, 10*time.Second)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, 120*time.Second)
	c.MetricsFlushInterval = cmp.Or(c.MetricsFlushInterval, time.Second)
	c.MonitoringFormatLimit = cmp.Or(c.MonitoringFormatLimit, 4096)

	c.BatchMaxItems = cmp.Or(c.BatchMaxItems, config.DefaultBatchMaxItems)
	c.BatchMaxBytes = cmp.Or(c.BatchMaxBytes, int64(config.DefaultBatchMaxBytes))
	c.BatchResultsMaxWait = cmp.Or(c.BatchResultsMaxWait, config.DefaultBatchResultsMaxWait)
	c.BatchUploadsPerProcess = cmp.Or(c.BatchUploadsPerProcess, config.DefaultBatchUploadsPerProcess)
	c.BatchUploadsPerKey = cmp.Or(c.BatchUploadsPerKey, config.DefaultBatchUploadsPerKey)
	c.BatchUploadMinRate = cmp.Or(c.BatchUploadMinRate, int64(config.DefaultBatchUploadMinRate))
	c.BatchUploadGrace = cmp.Or(c.BatchUploadGrace, config.DefaultBatchUploadGrace)

	c.RateLimitBurst = cmp.Or(c.RateLimitBurst, config.DefaultRateLimitBurst(c.RateLimitRPS))
	c.MaxStreamsPerKey = cmp.Or(c.MaxStreamsPerKey, config.DefaultSSEMaxStreamsPerKey)
	c.MaxWaitsPerKey = cmp.Or(c.MaxWaitsPerKey, config.DefaultWaitMaxPerKey)
	c.AuthFailuresPerMinute = cmp.Or(c.AuthFailuresPerMinute, config.DefaultAuthFailuresPerMinute)
	c.AuthFailureAddresses = cmp.Or(c.AuthFailureAddresses, 10000)
	return c
}

// validate checks a Config with its defaults filled in.
func (c Config) validate() error {
	var errs []error
	for name, v := range map[string]int64{
		"MaxBodyBytes": c.MaxBodyBytes, "MaxBatchBodyBytes": c.MaxBatchBodyBytes,
		"MaxQuestionChars": int64(c.MaxQuestionChars), "MaxBatchItems": int64(c.MaxBatchItems),
		"MonitoringFormatLimit": int64(c.MonitoringFormatLimit), "MaxStreamsPerKey": int64(c.MaxStreamsPerKey),
		"MaxWaitsPerKey":        int64(c.MaxWaitsPerKey),
		"AuthFailuresPerMinute": int64(c.AuthFailuresPerMinute), "AuthFailureAddresses": int64(c.AuthFailureAddresses),
		"MaxInputBytes": c.MaxInputBytes, "BatchUploadsPerProcess": int64(c.BatchUploadsPerProcess),
		"BatchUploadsPerKey": int64(c.BatchUploadsPerKey), "BatchUploadMinRate": c.BatchUploadMinRate,
		"BatchMaxItems": int64(c.BatchMaxItems), "BatchMaxBytes": c.BatchMaxBytes,
	} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	for name, d := range map[string]time.Duration{
		"PredictTimeout": c.PredictTimeout, "MaxWait": c.MaxWait, "Heartbeat": c.Heartbeat,
		"ReconnectDelay": c.ReconnectDelay, "PollAfter": c.PollAfter, "BusyRetryAfter": c.BusyRetryAfter,
		"UnavailableRetryAfter": c.UnavailableRetryAfter, "RedisTimeout": c.RedisTimeout,
		"WriteTimeout": c.WriteTimeout, "ReadTimeout": c.ReadTimeout, "ReadHeaderTimeout": c.ReadHeaderTimeout,
		"IdleTimeout": c.IdleTimeout, "MetricsFlushInterval": c.MetricsFlushInterval,
		"BatchResultsMaxWait": c.BatchResultsMaxWait, "BatchUploadGrace": c.BatchUploadGrace,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %v", name, d))
		}
	}
	errs = append(errs, c.validateSecurity()...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("api config: %w", err)
	}
	return nil
}
