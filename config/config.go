package config

import (
	"time"

	"github.com/qaqueue/qaqueue/pricing"
)

// Config is qaqueue's whole configuration, grouped by concern. Each field
// names its variable and default; [Load] fills it and [Config.Validate]
// checks it. Components take the group they need (cfg.Queue, cfg.LM, ...).
type Config struct {
	// HTTP is the API's listener, switches and request limits.
	HTTP HTTP
	// Redis is where the queue's Redis is.
	Redis Redis
	// Queue is the asynq queues, workers and job lifetimes.
	Queue Queue
	// LM is the model, the program state and the LM client.
	LM LM
	// Cache is the LM response cache layers.
	Cache Cache
	// Batch is /v1/batches.
	Batch Batch
	// Security is API keys, CORS and per-key limits.
	Security Security
	// Log is logging.
	Log Log
	// Telemetry is OpenTelemetry tracing, in OpenTelemetry's own variables.
	Telemetry Telemetry

	// sources records where each variable's value came from, for
	// Settings; nil in a Config built by hand.
	sources map[string]string
}

// HTTP configures the API's listener and the seed's HTTP switches.
type HTTP struct {
	// Host is the interface the API listens on; `qa dev`, which runs
	// without API keys, listens on 127.0.0.1 unless HOST is set. HOST,
	// default 0.0.0.0.
	Host string `env:"HOST"`
	// Port is the API's port; 0 picks a free one. PORT, default 8000.
	Port int `env:"PORT"`
	// Workers is the seed's uvicorn process count, accepted so old
	// deployments start, and otherwise ignored (Load adds a notice): here
	// workers scale as processes or replicas. WORKERS, default unset.
	Workers string `env:"WORKERS"`
	// EnableStreaming turns on /predict/stream and token events; off, the
	// endpoint answers 404 and only progress events are published.
	// ENABLE_STREAMING, default true.
	EnableStreaming bool `env:"ENABLE_STREAMING"`
	// EnableMetrics serves /metrics; off, it answers 404 {"detail": "Metrics
	// disabled"}. ENABLE_METRICS, default true.
	EnableMetrics bool `env:"ENABLE_METRICS"`
	// PredictTimeout is how long POST /predict waits for its job before
	// answering 504 with the job id. PREDICT_TIMEOUT, default 60s.
	PredictTimeout time.Duration `env:"PREDICT_TIMEOUT"`
	// MaxBodyBytes caps JSON request bodies (413 beyond); /v1/batches
	// uploads have their own BATCH_MAX_BYTES. MAX_BODY_BYTES, default 1MiB.
	MaxBodyBytes Size `env:"MAX_BODY_BYTES"`
	// MaxQuestionChars is the longest question accepted, in characters
	// (422 beyond). MAX_QUESTION_CHARS, default 10000.
	MaxQuestionChars int `env:"MAX_QUESTION_CHARS"`
	// MaxInputBytes caps the bytes of one job's or batch item's inputs, as
	// JSON (422 beyond); a line of an upload may be 4 KiB longer (custom_id
	// and the JSON around), and a longer one is refused while it is read, so
	// an upload's memory stays bounded. The default holds a question of
	// MAX_QUESTION_CHARS at JSON's worst escaping (12 bytes a character)
	// twice over, leaving room for inputs besides the question.
	// MAX_INPUT_BYTES, default 256KiB.
	MaxInputBytes Size `env:"MAX_INPUT_BYTES"`
}

// Redis says where the queue's Redis is: one URL, or a Sentinel group.
type Redis struct {
	// URL is redis://[user:password@]host:port/db or rediss:// for TLS.
	// Empty means: `qa dev` embeds a Redis, and `qa api` / `qa worker` use
	// [DefaultRedisURL] (see [Redis.EffectiveURL]). With Sentinel, the URL
	// only supplies the user, password, database and TLS of the master.
	// REDIS_URL, default empty.
	URL SecretURL `env:"REDIS_URL"`
	// SentinelAddrs lists Sentinel host:port addresses; set, the master is
	// found through them. REDIS_SENTINEL_ADDRS (comma-separated), default
	// empty.
	SentinelAddrs List `env:"REDIS_SENTINEL_ADDRS"`
	// SentinelMaster is the master's name, required with SentinelAddrs.
	// REDIS_SENTINEL_MASTER, default empty.
	SentinelMaster string `env:"REDIS_SENTINEL_MASTER"`
	// SentinelPassword authenticates to the Sentinels themselves.
	// REDIS_SENTINEL_PASSWORD, default empty.
	SentinelPassword Secret `env:"REDIS_SENTINEL_PASSWORD"`
	// PoolSize is the most connections one process opens to Redis; 0 sizes
	// it for the process: a worker WORKER_CONCURRENCY + BATCH_CONCURRENCY
	// (each in-flight job writes its own events; at least 100), the API 100
	// (requests hold a connection only for a command or a script; waits and
	// streams share one pub/sub connection). REDIS_POOL_SIZE, default 0.
	PoolSize int `env:"REDIS_POOL_SIZE"`
}

// APIPoolSize is the Redis pool of an API process.
func (r Redis) APIPoolSize() int {
	if r.PoolSize > 0 {
		return r.PoolSize
	}
	return 100
}

// WorkerPoolSize is the Redis pool of a worker process: blocking pickup holds
// a connection per idle server, and each in-flight job writes its events.
func (r Redis) WorkerPoolSize(q Queue) int {
	if r.PoolSize > 0 {
		return r.PoolSize
	}
	return max(q.WorkerConcurrency+q.BatchConcurrency, 100)
}

// Queue configures the asynq queues, the workers and job lifetimes.
type Queue struct {
	// WorkerConcurrency is the number of interactive jobs one worker
	// process runs at once. WORKER_CONCURRENCY, default 100.
	WorkerConcurrency int `env:"WORKER_CONCURRENCY"`
	// BatchConcurrency is the number of batch items one worker process
	// runs at once, on its own asynq server. BATCH_CONCURRENCY, default 20.
	BatchConcurrency int `env:"BATCH_CONCURRENCY"`
	// PollInterval is how often the interactive server polls an empty
	// queue: pickup latency against idle Redis load (about 3 commands per
	// poll per server). QUEUE_POLL_INTERVAL, default 20ms.
	PollInterval time.Duration `env:"QUEUE_POLL_INTERVAL"`
	// MaxPending is how many interactive jobs may wait before submissions
	// get 503 with Retry-After. QUEUE_MAX_PENDING, default 10000.
	MaxPending int `env:"QUEUE_MAX_PENDING"`
	// InteractiveMaxWait is how long an interactive job may wait to start
	// before it ends expired; whole seconds. INTERACTIVE_MAX_WAIT, default
	// 60s.
	InteractiveMaxWait time.Duration `env:"INTERACTIVE_MAX_WAIT"`
	// JobTimeout bounds one attempt of a job (asynq's Timeout); whole
	// seconds, and more than the LM attempts can take (see
	// [Config.Validate]). JOB_TIMEOUT, default 120s.
	JobTimeout time.Duration `env:"JOB_TIMEOUT"`
	// MaxRetries is how many times a failed attempt is retried (asynq's
	// MaxRetry); 0 never retries. MAX_RETRIES, default 3.
	MaxRetries int `env:"MAX_RETRIES"`
	// ResultTTL is how long a finished job's record and events live (also
	// asynq's Retention); whole seconds. RESULT_TTL, default 24h.
	ResultTTL time.Duration `env:"RESULT_TTL"`
	// IdempotencyTTL is how long an Idempotency-Key maps to its job; whole
	// seconds. IDEMPOTENCY_TTL, default 24h.
	IdempotencyTTL time.Duration `env:"IDEMPOTENCY_TTL"`
	// ShutdownTimeout is how long a stopping worker lets in-flight jobs
	// finish before they go back to the queue; more than JobTimeout, and
	// less than the container's grace period. SHUTDOWN_TIMEOUT, default
	// 130s.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT"`
	// WorkerMetricsPort serves a worker's /livez, /readyz and /metrics; 0
	// picks a free one. WORKER_METRICS_PORT, default 9091.
	WorkerMetricsPort int `env:"WORKER_METRICS_PORT"`
	// WorkerLivenessTTL is how long a worker's liveness key outlives its
	// last renewal (renewed every third of it): a worker silent for that
	// long is taken for dead and its running jobs run again elsewhere; at
	// least 1s. WORKER_LIVENESS_TTL, default 3s.
	WorkerLivenessTTL time.Duration `env:"WORKER_LIVENESS_TTL"`
}

// LM configures the model, the program and the LM client.
type LM struct {
	// Model is the DSPy model string, provider/model. DSPY_MODEL, default
	// openai/gpt-4o-mini.
	Model string `env:"DSPY_MODEL"`
	// ProgramStatePath is a DSPy program state (JSON) to load; empty uses
	// the built-in QA program. PROGRAM_STATE_PATH, default empty.
	ProgramStatePath string `env:"PROGRAM_STATE_PATH"`
	// ProgramMaxBytes caps a program push: its file, source and state
	// together (413 beyond). PROGRAM_MAX_BYTES, default 8MiB.
	ProgramMaxBytes Size `env:"PROGRAM_MAX_BYTES"`
	// ProgramMaxVersions is how many versions of each program the registry
	// keeps; older ones no alias names are pruned, and a queued job of a
	// pruned version fails with program_version_gone. PROGRAM_MAX_VERSIONS,
	// default 20.
	ProgramMaxVersions int `env:"PROGRAM_MAX_VERSIONS"`
	// ProgramsDir is a folder of program files (*.yaml) that qa dev pushes
	// at start-up, and qa api with PROGRAMS_PUSH_ON_START. PROGRAMS_DIR,
	// default empty: none.
	ProgramsDir string `env:"PROGRAMS_DIR"`
	// ProgramsPushOnStart makes qa api push PROGRAMS_DIR at start-up; off
	// by default, as replicas pushing during a rolling deploy would make
	// aliases flap. PROGRAMS_PUSH_ON_START, default false.
	ProgramsPushOnStart bool `env:"PROGRAMS_PUSH_ON_START"`
	// TrackUsage records token usage per job, as DSPy's track_usage.
	// TRACK_USAGE, default true.
	TrackUsage bool `env:"TRACK_USAGE"`
	// APIBase is the provider's base URL (an OpenAI-compatible endpoint).
	// LM_API_BASE, else <PROVIDER>_API_BASE (e.g. OPENAI_API_BASE), default
	// empty: the provider's public endpoint.
	APIBase string `env:"LM_API_BASE"`
	// APIKey authenticates to the provider. LM_API_KEY, else the
	// provider's usual variable, <PROVIDER>_API_KEY for the provider of
	// DSPY_MODEL (OPENAI_API_KEY for openai/...). Default empty.
	APIKey Secret `env:"LM_API_KEY"`
	// AzureAPIVersion is the api-version query parameter for azure/...
	// models. AZURE_API_VERSION, default empty.
	AzureAPIVersion string `env:"AZURE_API_VERSION"`
	// Temperature is sent when set; nil leaves it to the provider (and to
	// the cache key as null, like DSPy). LM_TEMPERATURE, default unset.
	Temperature *float64 `env:"LM_TEMPERATURE"`
	// MaxTokens is sent when set; nil leaves it to the provider.
	// LM_MAX_TOKENS, default unset.
	MaxTokens *int `env:"LM_MAX_TOKENS"`
	// Timeout bounds one LM call. LM_TIMEOUT, default 30s.
	Timeout time.Duration `env:"LM_TIMEOUT"`
	// RPM is the global requests-per-minute limit shared by all workers,
	// paced at RPM/60 a second; 0 is unlimited. LM_RPM, default 0.
	RPM int `env:"LM_RPM"`
	// TPM is the global tokens-per-minute limit; 0 is unlimited. LM_TPM,
	// default 0.
	TPM int `env:"LM_TPM"`
	// RateMaxWait is the longest a job waits on the rate limiter while
	// holding a worker slot; a longer wait re-queues the job with a delay,
	// which is not a failed attempt. LM_RATE_MAX_WAIT, default 10s.
	RateMaxWait time.Duration `env:"LM_RATE_MAX_WAIT"`
	// StructuredOutputs says whether the JSON fall-back first asks for
	// structured outputs (a json_schema response_format) before JSON mode:
	// on, off, or auto, DSPy's rule (LiteLLM's model map: known OpenAI
	// models yes; hosted_vllm/..., unknown names and providers without it
	// no). LM_STRUCTURED_OUTPUTS, default auto.
	StructuredOutputs string `env:"LM_STRUCTURED_OUTPUTS"`
	// Prices prices LM usage, live and through a provider's batch API:
	// a JSON object of model → {input, output, cached_input, batch_input,
	// batch_output, batch_cached_input} in USD per million tokens, merged
	// over the built-in prices of common OpenAI, Anthropic and Gemini
	// models (a model given replaces its entry; a missing batch price is
	// half the live one, a missing cached price the input price; see
	// pricing.Parse). `qa config` shows the entries that differ from the
	// built-in ones. LM_PRICES, default empty: the built-in prices.
	Prices pricing.Table `env:"LM_PRICES"`
}

// Cache configures the LM response cache layers: memory, disk and Redis.
type Cache struct {
	// Dir holds the disk cache, a subdirectory per namespace (one per model
	// and base URL; `qa cache` lists them). CACHE_DIR, default $XDG_CACHE_HOME/qaqueue,
	// else $HOME/.cache/qaqueue, else .cache/qaqueue: a per-user
	// directory, like DSPy's ~/.dspy_cache, so the cache does not depend
	// on the working directory.
	Dir string `env:"CACHE_DIR"`
	// DiskEnabled turns the disk layer on. CACHE_DISK_ENABLED, default true.
	DiskEnabled bool `env:"CACHE_DISK_ENABLED"`
	// DiskSize caps the disk layer of each namespace. CACHE_DISK_SIZE,
	// default 1GiB.
	DiskSize Size `env:"CACHE_DISK_SIZE"`
	// MemoryEnabled turns the in-process LRU layer on.
	// CACHE_MEMORY_ENABLED, default true.
	MemoryEnabled bool `env:"CACHE_MEMORY_ENABLED"`
	// MemoryEntries caps the in-process layer. CACHE_MEMORY_ENTRIES,
	// default 100000.
	MemoryEntries int `env:"CACHE_MEMORY_ENTRIES"`
	// RedisEnabled turns on the cache shared by all workers.
	// CACHE_REDIS_ENABLED, default true.
	RedisEnabled bool `env:"CACHE_REDIS_ENABLED"`
	// RedisURL puts the shared cache on its own Redis, where an LRU
	// eviction policy is right (the queue's Redis must not evict); empty
	// shares the queue's Redis client, Sentinel included. CACHE_REDIS_URL,
	// default empty.
	RedisURL SecretURL `env:"CACHE_REDIS_URL"`
	// RedisTTL is how long a shared cache entry lives. CACHE_REDIS_TTL,
	// default 168h (7 days).
	RedisTTL time.Duration `env:"CACHE_REDIS_TTL"`
}

// Batch configures /v1/batches.
type Batch struct {
	// MaxItems caps the items of one batch (413 beyond). BATCH_MAX_ITEMS,
	// default 50000.
	MaxItems int `env:"BATCH_MAX_ITEMS"`
	// MaxBytes caps one batch upload (413 beyond). BATCH_MAX_BYTES,
	// default 100MB.
	MaxBytes Size `env:"BATCH_MAX_BYTES"`
	// ResultTTL is how long a finished batch and its results live; whole
	// seconds. BATCH_RESULT_TTL, default 168h (7 days).
	ResultTTL time.Duration `env:"BATCH_RESULT_TTL"`
	// CompletionWindow is how long a batch may run before it ends expired,
	// keeping what finished; whole seconds. BATCH_COMPLETION_WINDOW,
	// default 24h.
	CompletionWindow time.Duration `env:"BATCH_COMPLETION_WINDOW"`
	// OwnerShare is the fraction of the batch workers one owner's batches
	// may occupy, in (0, 1]. BATCH_OWNER_SHARE, default 0.5.
	OwnerShare float64 `env:"BATCH_OWNER_SHARE"`
	// ResultsMaxWait bounds one results download that waits
	// (GET /v1/batches/{id}/results?wait=true): past it the download ends
	// with a line saying where to resume. BATCH_RESULTS_MAX_WAIT, default 1h.
	ResultsMaxWait time.Duration `env:"BATCH_RESULTS_MAX_WAIT"`
	// UploadsPerProcess caps the uploads one API process reads at once
	// (429 beyond). BATCH_UPLOADS_PER_PROCESS, default 8.
	UploadsPerProcess int `env:"BATCH_UPLOADS_PER_PROCESS"`
	// UploadsPerKey caps the uploads one key sends at once, across every
	// API replica (429 beyond). BATCH_UPLOADS_PER_KEY, default 2.
	UploadsPerKey int `env:"BATCH_UPLOADS_PER_KEY"`
	// UploadMinRate is the slowest an upload may arrive, in bytes per
	// second, after BATCH_UPLOAD_GRACE; slower, 408. At the default a
	// BATCH_MAX_BYTES upload may take 17 minutes. BATCH_UPLOAD_MIN_RATE,
	// default 100KB.
	UploadMinRate Size `env:"BATCH_UPLOAD_MIN_RATE"`
	// UploadGrace is how long an upload may take beyond its bytes at
	// BATCH_UPLOAD_MIN_RATE. BATCH_UPLOAD_GRACE, default 30s.
	UploadGrace time.Duration `env:"BATCH_UPLOAD_GRACE"`
	// QuotaItemsPerKey caps the items one key's live batches hold (an
	// upload over it gets 429); ended batches count until deleted or
	// expired; 0 is off. BATCH_QUOTA_ITEMS_PER_KEY, default 100000 (two
	// batches of BATCH_MAX_ITEMS).
	QuotaItemsPerKey int64 `env:"BATCH_QUOTA_ITEMS_PER_KEY"`
	// QuotaBytesPerKey caps the bytes of the inputs one key's live batches
	// hold in Redis (a cancelled batch frees its unstarted items'); 0 is
	// off. Keep it well below Redis's maxmemory, so one key cannot fill it
	// for every other. BATCH_QUOTA_BYTES_PER_KEY, default 200MB (two
	// uploads of BATCH_MAX_BYTES).
	QuotaBytesPerKey Size `env:"BATCH_QUOTA_BYTES_PER_KEY"`

	// ProviderBatches offers POST /v1/batches?mode=provider when the LM's
	// provider has a batch API (openai, azure, groq); false refuses it.
	// PROVIDER_BATCHES, default true.
	ProviderBatches bool `env:"PROVIDER_BATCHES"`
	// ProviderMaxRequests caps the requests of one provider batch file
	// (?mode=provider; OpenAI's limit). PROVIDER_MAX_REQUESTS, default
	// 50000.
	ProviderMaxRequests int `env:"PROVIDER_MAX_REQUESTS"`
	// ProviderMaxBytes caps the bytes of one provider batch file (OpenAI's
	// limit). PROVIDER_MAX_BYTES, default 200MB.
	ProviderMaxBytes Size `env:"PROVIDER_MAX_BYTES"`
	// ProviderPollInterval is the first wait between two looks at a
	// running provider batch, doubled at each look that finds it
	// unfinished up to PROVIDER_POLL_MAX. PROVIDER_POLL_INTERVAL, default
	// 30s.
	ProviderPollInterval time.Duration `env:"PROVIDER_POLL_INTERVAL"`
	// ProviderPollMax is the longest wait between two looks at a running
	// provider batch. PROVIDER_POLL_MAX, default 10m.
	ProviderPollMax time.Duration `env:"PROVIDER_POLL_MAX"`
	// ProviderFallback is where an item goes whose provider answer does
	// not parse, for DSPy's next (JSON) attempt: live (a live call at
	// once) or provider (a further provider round). PROVIDER_FALLBACK,
	// default live.
	ProviderFallback string `env:"PROVIDER_FALLBACK"`
	// ProviderUnfinished is what becomes of the items a cancelled-by-the-
	// provider, expired or failed provider batch left unanswered: live
	// (they run live) or fail. PROVIDER_UNFINISHED, default live.
	ProviderUnfinished string `env:"PROVIDER_UNFINISHED"`
}

// Security configures authentication, CORS and per-key limits.
type Security struct {
	// APIKeys are the keys clients use (Authorization: Bearer); a key's
	// name owns what it creates. Unset, the API is open (`qa api` refuses
	// that unless AllowAnonymous). API_KEYS, comma-separated "name:key" or
	// "name:sha256:<hex>", default empty.
	APIKeys APIKeys `env:"API_KEYS"`
	// AdminAPIKeys open the dashboard and /metrics. Their names share one
	// namespace with APIKeys. ADMIN_API_KEYS, same syntax, default empty.
	AdminAPIKeys APIKeys `env:"ADMIN_API_KEYS"`
	// AllowAnonymous lets `qa api` run without API_KEYS. ALLOW_ANONYMOUS,
	// default false.
	AllowAnonymous bool `env:"ALLOW_ANONYMOUS"`
	// MonitoringReadonly keeps the dashboard from deleting or re-running
	// tasks. MONITORING_READONLY, default true.
	MonitoringReadonly bool `env:"MONITORING_READONLY"`
	// MonitoringCompletedTasks keeps each finished job's asynq task for an
	// hour, with a copy of its result, so the dashboard lists completed
	// jobs with their answers: two Redis commands more a job, and asynq's
	// janitor deleting each later. Off, GET /v1/jobs/{id} has the result.
	// MONITORING_COMPLETED_TASKS, default false.
	MonitoringCompletedTasks bool `env:"MONITORING_COMPLETED_TASKS"`
	// MonitoringPrometheusURL is the Prometheus that scrapes our metrics;
	// when set, the dashboard shows its Metrics page, querying it from the
	// server (e.g. http://prometheus:9090). MONITORING_PROMETHEUS_URL,
	// default unset: no Metrics page.
	MonitoringPrometheusURL string `env:"MONITORING_PROMETHEUS_URL"`
	// MetricsPublic serves /metrics without an admin key, for a scraper on
	// a private network. METRICS_PUBLIC, default false.
	MetricsPublic bool `env:"METRICS_PUBLIC"`
	// CORSOrigins are the origins allowed cross-origin requests (with
	// credentials, so never "*"); empty turns CORS off. CORS_ORIGINS,
	// comma-separated, default empty.
	CORSOrigins List `env:"CORS_ORIGINS"`
	// RateLimitRPS is the requests per second one key may make, shared by
	// all API replicas; 0 is off. RATE_LIMIT_RPS, default 0.
	RateLimitRPS float64 `env:"RATE_LIMIT_RPS"`
	// RateLimitBurst is the burst above RateLimitRPS. RATE_LIMIT_BURST,
	// default 0, which means RateLimitRPS rounded up (at least 1).
	RateLimitBurst int `env:"RATE_LIMIT_BURST"`
	// TokenBudgetPerDay caps the LM tokens one key's jobs may use per UTC
	// day, checked at submit and as each job or batch item starts; 0 is off.
	// TOKEN_BUDGET_PER_DAY, default 0.
	TokenBudgetPerDay int64 `env:"TOKEN_BUDGET_PER_DAY"`
	// SSEMaxStreamsPerKey caps the streams one key holds open across every
	// API replica: event streams and results downloads that wait.
	// SSE_MAX_STREAMS_PER_KEY, default 100.
	SSEMaxStreamsPerKey int `env:"SSE_MAX_STREAMS_PER_KEY"`
	// WaitMaxPerKey caps the ?wait= long polls one key holds across every
	// API replica, counted once a poll has waited a second.
	// WAIT_MAX_PER_KEY, default 1000.
	WaitMaxPerKey int `env:"WAIT_MAX_PER_KEY"`
	// TrustedProxies are the proxies (IP addresses or CIDRs) whose
	// X-Forwarded-For names the client's address, which the
	// failed-authentication limit (and, without API keys, the rate limit)
	// counts by; from anyone else the header is ignored. TRUSTED_PROXIES,
	// comma-separated, default empty: the connection's address.
	TrustedProxies List `env:"TRUSTED_PROXIES"`
	// AuthFailuresPerMinute is how many failed authentications one client
	// address may make a minute, counted per API process; beyond, its
	// requests get 429 until a minute/AuthFailuresPerMinute has passed.
	// AUTH_FAILURES_PER_MINUTE, default 60.
	AuthFailuresPerMinute int `env:"AUTH_FAILURES_PER_MINUTE"`
}

// Log configures logging.
type Log struct {
	// Level is the lowest level logged, in zerolog's names: trace, debug,
	// info, warn, error, fatal or disabled. Case does not matter, and the
	// Python names the seed used are accepted (WARNING is warn, CRITICAL is
	// fatal); Load stores the zerolog name. LOG_LEVEL, default info.
	Level string `env:"LOG_LEVEL"`
	// Format is json (one object per line) or console (for people).
	// LOG_FORMAT, default json.
	Format string `env:"LOG_FORMAT"`
	// Questions lets question, answer and LM text reach the logs: the
	// question (clipped) on a job's worker lines, a failure's whole reason
	// (a parse failure's quotes the LM's answer). False keeps them out: a
	// failure logs its code, and the quoted text's length and hash.
	// LOG_QUESTIONS, default false.
	Questions bool `env:"LOG_QUESTIONS"`
}

// Telemetry configures OpenTelemetry traces with the variables every
// OpenTelemetry SDK reads (package telemetry builds the exporter; the
// exporter's TLS, timeout and compression variables and OTEL_BSP_* are read
// by the SDK itself). Tracing is off unless an endpoint is set or
// OTEL_TRACES_EXPORTER=otlp; off, it costs nothing.
type Telemetry struct {
	// Disabled turns tracing off whatever else is set. OTEL_SDK_DISABLED,
	// default false.
	Disabled bool `env:"OTEL_SDK_DISABLED"`
	// Exporter is otlp or none; unset, traces are exported when an endpoint
	// is set. OTEL_TRACES_EXPORTER, default unset.
	Exporter string `env:"OTEL_TRACES_EXPORTER"`
	// Endpoint is the OTLP collector's base URL (http://host:4318 for
	// OTLP/HTTP, which adds /v1/traces; http://host:4317 for gRPC).
	// OTEL_EXPORTER_OTLP_ENDPOINT, default unset.
	Endpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	// TracesEndpoint is the full URL traces are sent to, winning over
	// Endpoint. OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, default unset.
	TracesEndpoint string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`
	// Protocol is http/protobuf or grpc. OTEL_EXPORTER_OTLP_PROTOCOL,
	// default unset (http/protobuf).
	Protocol string `env:"OTEL_EXPORTER_OTLP_PROTOCOL"`
	// Headers are sent with every export (a collector's API key),
	// comma-separated key=value with URL-encoded values.
	// OTEL_EXPORTER_OTLP_HEADERS, default empty.
	Headers Secret `env:"OTEL_EXPORTER_OTLP_HEADERS"`
	// Sampler decides which traces are kept: always_on, always_off,
	// traceidratio, parentbased_always_on, parentbased_always_off or
	// parentbased_traceidratio (a job's spans follow the decision made for
	// its request; a batch item's trace is a new root, so a ratio keeps that
	// share of a batch's items). OTEL_TRACES_SAMPLER, default
	// unset (parentbased_always_on).
	Sampler string `env:"OTEL_TRACES_SAMPLER"`
	// SamplerArg is the ratio of the *traceidratio samplers, 0 to 1.
	// OTEL_TRACES_SAMPLER_ARG, default unset (1).
	SamplerArg string `env:"OTEL_TRACES_SAMPLER_ARG"`
	// ServiceName names the spans' service; unset, each process is
	// qaqueue-api, qaqueue-worker or qaqueue-dev. OTEL_SERVICE_NAME,
	// default unset.
	ServiceName string `env:"OTEL_SERVICE_NAME"`
	// ResourceAttributes are added to every span's resource,
	// comma-separated key=value. OTEL_RESOURCE_ATTRIBUTES, default empty.
	ResourceAttributes string `env:"OTEL_RESOURCE_ATTRIBUTES"`
}
