package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/redisconn"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// version is stamped at build time (-ldflags -X main.version=…).
var version = "dev"

// loadConfig reads the environment and .env, logs nothing, and returns every
// problem at once.
func loadConfig(e env) (*config.Config, []string, error) {
	return config.LoadWithDotEnv(lookupEnv(e), ".env")
}

// newLogger builds the process logger from LOG_LEVEL and LOG_FORMAT.
func newLogger(cfg *config.Config, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.Log.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	if cfg.Log.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Str("version", version).Logger()
}

func logNotices(log zerolog.Logger, notices []string) {
	for _, n := range notices {
		log.Warn().Msg(n)
	}
}

// openRedis connects to the queue's Redis (REDIS_URL or Sentinel) with at
// most poolSize connections, and waits for it to answer.
func openRedis(ctx context.Context, cfg *config.Config, url string, poolSize int) (redis.UniversalClient, error) {
	rdb, err := redisconn.Open(redisconn.Options{
		URL:              url,
		SentinelAddrs:    cfg.Redis.SentinelAddrs,
		SentinelMaster:   cfg.Redis.SentinelMaster,
		SentinelPassword: cfg.Redis.SentinelPassword.Reveal(),
		PoolSize:         poolSize,
	})
	if err != nil {
		return nil, err
	}
	if err := redisconn.Ping(ctx, rdb, 10*time.Second); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("connect to redis %s: %w", config.RedactURL(url), err)
	}
	return rdb, nil
}

// jobsConfig maps the environment onto the job contract's settings.
func jobsConfig(cfg *config.Config) store.Config {
	return store.Config{
		MaxAttempts:    cfg.Queue.MaxRetries + 1,
		ResultTTL:      cfg.Queue.ResultTTL,
		IdempotencyTTL: cfg.Queue.IdempotencyTTL,
		MaxPending:     cfg.Queue.MaxPending,
		JobTimeout:     cfg.Queue.JobTimeout,
		TaskRetention:  completedTaskRetention(cfg),
		// Checked again as each job and batch item starts (the API checks it
		// at submit).
		TokenBudgetPerDay: cfg.Security.TokenBudgetPerDay,
		UsageRetention:    cfg.Queue.UsageRetention,
	}
}

// completedTaskRetention keeps finished job tasks for the dashboard
// (MONITORING_COMPLETED_TASKS), or not at all.
func completedTaskRetention(cfg *config.Config) time.Duration {
	if cfg.Security.MonitoringCompletedTasks {
		return time.Hour
	}
	return 0
}

// lmConfig maps the environment onto the LM client's settings.
func lmConfig(cfg *config.Config, lookup config.Lookup) lmclient.Config {
	return lmclient.Config{
		Model:           cfg.LM.Model,
		APIBase:         cfg.LM.APIBase,
		APIKey:          cfg.LM.APIKey.Reveal(),
		AzureAPIVersion: cfg.LM.AzureAPIVersion,
		LookupEnv:       lookup,
		Temperature:     cfg.LM.Temperature,
		MaxTokens:       cfg.LM.MaxTokens,
		Timeout:         cfg.LM.Timeout,
		MemoryEnabled:   cfg.Cache.MemoryEnabled,
		MemoryEntries:   cfg.Cache.MemoryEntries,
		DiskEnabled:     cfg.Cache.DiskEnabled,
		DiskSizeBytes:   int64(cfg.Cache.DiskSize),
		Dir:             cfg.Cache.Dir,
		RedisEnabled:    cfg.Cache.RedisEnabled,
		RedisTTL:        cfg.Cache.RedisTTL,
		RPM:             cfg.LM.RPM,
		TPM:             cfg.LM.TPM,
		MaxWait:         cfg.LM.RateMaxWait,

		StructuredOutputs: cfg.LM.StructuredOutputs,
	}
}

// newLM builds the LM client; the LM cache may live on its own Redis. tp
// traces its calls; nil when tracing is off.
func newLM(ctx context.Context, cfg *config.Config, lcfg lmclient.Config, rdb redis.UniversalClient, log zerolog.Logger, reg prometheus.Registerer, tp trace.TracerProvider) (*lmclient.Client, func(), error) {
	deps := lmclient.Deps{Redis: rdb, Logger: &log, Registerer: reg, Tracing: tp}
	closeCache := func() {}
	if url := cfg.Cache.RedisURL.Reveal(); url != "" && cfg.Cache.RedisEnabled {
		cr, err := redisconn.Open(redisconn.Options{URL: url})
		if err != nil {
			return nil, nil, fmt.Errorf("open CACHE_REDIS_URL: %w", err)
		}
		deps.CacheRedis = cr
		closeCache = func() { _ = cr.Close() }
	}
	if lcfg.DiskEnabled {
		if err := os.MkdirAll(lcfg.Dir, 0o755); err != nil {
			closeCache()
			return nil, nil, fmt.Errorf("create CACHE_DIR %s: %w", lcfg.Dir, err)
		}
	}
	c, err := lmclient.New(lcfg, deps)
	if err != nil {
		closeCache()
		return nil, nil, err
	}
	return c, func() { _ = c.Close(); closeCache() }, nil
}

// loadProgram loads the QA program with PROGRAM_STATE_PATH's state, if any.
func loadProgram(cfg *config.Config, log zerolog.Logger) (*program.Program, error) {
	p, warnings, err := program.LoadQA(cfg.LM.ProgramStatePath)
	if err != nil {
		return nil, fmt.Errorf("load PROGRAM_STATE_PATH: %w", err)
	}
	for _, w := range warnings {
		log.Warn().Str("state", cfg.LM.ProgramStatePath).Msg(w)
	}
	return p, nil
}

func workerConfig(cfg *config.Config) worker.Config {
	return worker.Config{
		Concurrency:        cfg.Queue.WorkerConcurrency,
		BatchConcurrency:   cfg.Queue.BatchConcurrency,
		PollInterval:       cfg.Queue.PollInterval,
		InteractiveMaxWait: cfg.Queue.InteractiveMaxWait,
		ShutdownTimeout:    cfg.Queue.ShutdownTimeout,
		LivenessTTL:        cfg.Queue.WorkerLivenessTTL,
		DisableStreaming:   !cfg.HTTP.EnableStreaming,
		DisableUsage:       !cfg.LM.TrackUsage,
		BatchOwnerShare:    cfg.Batch.OwnerShare,
		LogQuestions:       cfg.Log.Questions,
	}
}

// errConfig lists an invalid configuration's problems, one per line.
func errConfig(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) {
		return invalidConfig(err)
	}
	return err
}
