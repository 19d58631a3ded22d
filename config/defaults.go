package config

import (
	"math"
	"time"

	"github.com/qaqueue/qaqueue/pricing"
)

// The defaults of the variables, each written once. [Parse] starts from
// them, and each component's Config fills a zero field from the same name,
// so `qa config`, .env.example and a component built by hand agree. A
// variable whose default is empty, zero or false has no constant: the zero
// value is its default everywhere.
const (
	// DefaultHost is HOST's default.
	DefaultHost = "0.0.0.0"
	// DefaultPort is PORT's default.
	DefaultPort = 8000
	// DefaultEnableStreaming is ENABLE_STREAMING's default.
	DefaultEnableStreaming = true
	// DefaultEnableMetrics is ENABLE_METRICS's default.
	DefaultEnableMetrics = true
	// DefaultPredictTimeout is PREDICT_TIMEOUT's default.
	DefaultPredictTimeout = 60 * time.Second
	// DefaultMaxBodyBytes is MAX_BODY_BYTES's default.
	DefaultMaxBodyBytes = 1 * MiB
	// DefaultMaxQuestionChars is MAX_QUESTION_CHARS's default.
	DefaultMaxQuestionChars = 10000
	// DefaultMaxInputBytes is MAX_INPUT_BYTES's default: a question of
	// DefaultMaxQuestionChars at JSON's worst escaping (12 bytes a
	// character) twice over.
	DefaultMaxInputBytes = 256 * KiB

	// DefaultWorkerConcurrency is WORKER_CONCURRENCY's default.
	DefaultWorkerConcurrency = 100
	// DefaultBatchConcurrency is BATCH_CONCURRENCY's default.
	DefaultBatchConcurrency = 20
	// DefaultQueuePollInterval is QUEUE_POLL_INTERVAL's default.
	DefaultQueuePollInterval = 20 * time.Millisecond
	// DefaultQueueMaxPending is QUEUE_MAX_PENDING's default.
	DefaultQueueMaxPending = 10000
	// DefaultInteractiveMaxWait is INTERACTIVE_MAX_WAIT's default.
	DefaultInteractiveMaxWait = 60 * time.Second
	// DefaultJobTimeout is JOB_TIMEOUT's default.
	DefaultJobTimeout = 120 * time.Second
	// DefaultMaxRetries is MAX_RETRIES's default.
	DefaultMaxRetries = 3
	// DefaultResultTTL is RESULT_TTL's default.
	DefaultResultTTL = 24 * time.Hour
	// DefaultIdempotencyTTL is IDEMPOTENCY_TTL's default.
	DefaultIdempotencyTTL = 24 * time.Hour
	// DefaultUsageRetention is USAGE_RETENTION's default (90 days).
	DefaultUsageRetention = 2160 * time.Hour
	// DefaultShutdownTimeout is SHUTDOWN_TIMEOUT's default.
	DefaultShutdownTimeout = 130 * time.Second
	// DefaultWorkerMetricsPort is WORKER_METRICS_PORT's default.
	DefaultWorkerMetricsPort = 9091
	// DefaultWorkerLivenessTTL is WORKER_LIVENESS_TTL's default.
	DefaultWorkerLivenessTTL = 3 * time.Second

	// DefaultModel is DSPY_MODEL's default.
	DefaultModel = "openai/gpt-4o-mini"
	// DefaultProgramMaxBytes is PROGRAM_MAX_BYTES's default.
	DefaultProgramMaxBytes = 8 * MiB
	// DefaultProgramMaxVersions is PROGRAM_MAX_VERSIONS's default.
	DefaultProgramMaxVersions = 20
	// DefaultTrackUsage is TRACK_USAGE's default.
	DefaultTrackUsage = true
	// DefaultLMTimeout is LM_TIMEOUT's default.
	DefaultLMTimeout = 30 * time.Second
	// DefaultLMRateMaxWait is LM_RATE_MAX_WAIT's default.
	DefaultLMRateMaxWait = 10 * time.Second
	// DefaultLMStructuredOutputs is LM_STRUCTURED_OUTPUTS's default.
	DefaultLMStructuredOutputs = "auto"

	// DefaultCacheDiskEnabled is CACHE_DISK_ENABLED's default.
	DefaultCacheDiskEnabled = true
	// DefaultCacheDiskSize is CACHE_DISK_SIZE's default.
	DefaultCacheDiskSize = 1 * GiB
	// DefaultCacheMemoryEnabled is CACHE_MEMORY_ENABLED's default.
	DefaultCacheMemoryEnabled = true
	// DefaultCacheMemoryEntries is CACHE_MEMORY_ENTRIES's default.
	DefaultCacheMemoryEntries = 100000
	// DefaultCacheRedisEnabled is CACHE_REDIS_ENABLED's default.
	DefaultCacheRedisEnabled = true
	// DefaultCacheRedisTTL is CACHE_REDIS_TTL's default (7 days).
	DefaultCacheRedisTTL = 168 * time.Hour

	// DefaultBatchMaxItems is BATCH_MAX_ITEMS's default.
	DefaultBatchMaxItems = 50000
	// DefaultBatchMaxBytes is BATCH_MAX_BYTES's default.
	DefaultBatchMaxBytes = 100 * MB
	// DefaultBatchResultTTL is BATCH_RESULT_TTL's default (7 days).
	DefaultBatchResultTTL = 168 * time.Hour
	// DefaultBatchCompletionWindow is BATCH_COMPLETION_WINDOW's default.
	DefaultBatchCompletionWindow = 24 * time.Hour
	// DefaultBatchOwnerShare is BATCH_OWNER_SHARE's default.
	DefaultBatchOwnerShare = 0.5
	// DefaultBatchResultsMaxWait is BATCH_RESULTS_MAX_WAIT's default.
	DefaultBatchResultsMaxWait = time.Hour
	// DefaultBatchUploadsPerProcess is BATCH_UPLOADS_PER_PROCESS's default.
	DefaultBatchUploadsPerProcess = 8
	// DefaultBatchUploadsPerKey is BATCH_UPLOADS_PER_KEY's default.
	DefaultBatchUploadsPerKey = 2
	// DefaultBatchUploadMinRate is BATCH_UPLOAD_MIN_RATE's default.
	DefaultBatchUploadMinRate = 100 * KB
	// DefaultBatchUploadGrace is BATCH_UPLOAD_GRACE's default.
	DefaultBatchUploadGrace = 30 * time.Second
	// DefaultBatchQuotaItemsPerKey is BATCH_QUOTA_ITEMS_PER_KEY's default:
	// two batches of DefaultBatchMaxItems.
	DefaultBatchQuotaItemsPerKey = 2 * DefaultBatchMaxItems
	// DefaultBatchQuotaBytesPerKey is BATCH_QUOTA_BYTES_PER_KEY's default:
	// two uploads of DefaultBatchMaxBytes.
	DefaultBatchQuotaBytesPerKey = 2 * DefaultBatchMaxBytes
	// DefaultProviderMaxRequests is PROVIDER_MAX_REQUESTS's default.
	DefaultProviderMaxRequests = 50000
	// DefaultProviderMaxBytes is PROVIDER_MAX_BYTES's default.
	DefaultProviderMaxBytes = 200 * MB
	// DefaultProviderPollInterval is PROVIDER_POLL_INTERVAL's default.
	DefaultProviderPollInterval = 30 * time.Second
	// DefaultProviderPollMax is PROVIDER_POLL_MAX's default.
	DefaultProviderPollMax = 10 * time.Minute
	// DefaultProviderFallback is PROVIDER_FALLBACK's default.
	DefaultProviderFallback = "live"
	// DefaultProviderUnfinished is PROVIDER_UNFINISHED's default.
	DefaultProviderUnfinished = "live"

	// DefaultMonitoringReadonly is MONITORING_READONLY's default.
	DefaultMonitoringReadonly = true
	// DefaultSSEMaxStreamsPerKey is SSE_MAX_STREAMS_PER_KEY's default.
	DefaultSSEMaxStreamsPerKey = 100
	// DefaultWaitMaxPerKey is WAIT_MAX_PER_KEY's default.
	DefaultWaitMaxPerKey = 1000
	// DefaultAuthFailuresPerMinute is AUTH_FAILURES_PER_MINUTE's default.
	DefaultAuthFailuresPerMinute = 60

	// DefaultLogLevel is LOG_LEVEL's default.
	DefaultLogLevel = "info"
	// DefaultLogFormat is LOG_FORMAT's default.
	DefaultLogFormat = "json"
)

// DefaultRateLimitBurst is RATE_LIMIT_BURST's default for a rate of rps
// requests per second: rps rounded up, at least 1 (0 while the rate limit
// is off).
func DefaultRateLimitBurst(rps float64) int {
	if !(rps > 0) { // NaN too
		return 0
	}
	return max(1, int(math.Min(math.Ceil(rps), math.MaxInt32)))
}

// defaultConfig is the Config of an empty environment before [Config.resolve]
// fills in the defaults that depend on other values (CACHE_DIR,
// RATE_LIMIT_BURST): [Parse] starts from it, and the env library leaves a
// field alone unless its variable is set.
func defaultConfig() Config {
	return Config{
		HTTP: HTTP{
			Host:             DefaultHost,
			Port:             DefaultPort,
			EnableStreaming:  DefaultEnableStreaming,
			EnableMetrics:    DefaultEnableMetrics,
			PredictTimeout:   DefaultPredictTimeout,
			MaxBodyBytes:     DefaultMaxBodyBytes,
			MaxQuestionChars: DefaultMaxQuestionChars,
			MaxInputBytes:    DefaultMaxInputBytes,
		},
		Queue: Queue{
			WorkerConcurrency:  DefaultWorkerConcurrency,
			BatchConcurrency:   DefaultBatchConcurrency,
			PollInterval:       DefaultQueuePollInterval,
			MaxPending:         DefaultQueueMaxPending,
			InteractiveMaxWait: DefaultInteractiveMaxWait,
			JobTimeout:         DefaultJobTimeout,
			MaxRetries:         DefaultMaxRetries,
			ResultTTL:          DefaultResultTTL,
			IdempotencyTTL:     DefaultIdempotencyTTL,
			UsageRetention:     DefaultUsageRetention,
			ShutdownTimeout:    DefaultShutdownTimeout,
			WorkerMetricsPort:  DefaultWorkerMetricsPort,
			WorkerLivenessTTL:  DefaultWorkerLivenessTTL,
		},
		LM: LM{
			Model:              DefaultModel,
			TrackUsage:         DefaultTrackUsage,
			ProgramMaxBytes:    DefaultProgramMaxBytes,
			ProgramMaxVersions: DefaultProgramMaxVersions,
			Timeout:            DefaultLMTimeout,
			RateMaxWait:        DefaultLMRateMaxWait,
			StructuredOutputs:  DefaultLMStructuredOutputs,
			Prices:             pricing.Default(),
		},
		Cache: Cache{
			DiskEnabled:   DefaultCacheDiskEnabled,
			DiskSize:      DefaultCacheDiskSize,
			MemoryEnabled: DefaultCacheMemoryEnabled,
			MemoryEntries: DefaultCacheMemoryEntries,
			RedisEnabled:  DefaultCacheRedisEnabled,
			RedisTTL:      DefaultCacheRedisTTL,
		},
		Batch: Batch{
			MaxItems:          DefaultBatchMaxItems,
			MaxBytes:          DefaultBatchMaxBytes,
			ResultTTL:         DefaultBatchResultTTL,
			CompletionWindow:  DefaultBatchCompletionWindow,
			OwnerShare:        DefaultBatchOwnerShare,
			ResultsMaxWait:    DefaultBatchResultsMaxWait,
			UploadsPerProcess: DefaultBatchUploadsPerProcess,
			UploadsPerKey:     DefaultBatchUploadsPerKey,
			UploadMinRate:     DefaultBatchUploadMinRate,
			UploadGrace:       DefaultBatchUploadGrace,
			QuotaItemsPerKey:  DefaultBatchQuotaItemsPerKey,
			QuotaBytesPerKey:  DefaultBatchQuotaBytesPerKey,

			ProviderBatches:      true,
			ProviderMaxRequests:  DefaultProviderMaxRequests,
			ProviderMaxBytes:     DefaultProviderMaxBytes,
			ProviderPollInterval: DefaultProviderPollInterval,
			ProviderPollMax:      DefaultProviderPollMax,
			ProviderFallback:     DefaultProviderFallback,
			ProviderUnfinished:   DefaultProviderUnfinished,
		},
		Security: Security{
			MonitoringReadonly:    DefaultMonitoringReadonly,
			SSEMaxStreamsPerKey:   DefaultSSEMaxStreamsPerKey,
			WaitMaxPerKey:         DefaultWaitMaxPerKey,
			AuthFailuresPerMinute: DefaultAuthFailuresPerMinute,
		},
		Log: Log{
			Level:  DefaultLogLevel,
			Format: DefaultLogFormat,
		},
	}
}
