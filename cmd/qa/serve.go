package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/redisconn"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/programs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// runServeAPI is `qa api`: the HTTP front door, until SIGTERM.
func runServeAPI(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa api", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	serverUsage(fs, e.stderr, "qa api", "Runs the HTTP API until SIGTERM. It enqueues work into Redis; `qa worker`\nprocesses on the same Redis run it.", apiHelp)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, notices, err := loadConfig(e)
	if err != nil {
		return errConfig(err)
	}
	if err := checkOpenAPI(cfg); err != nil {
		return err
	}
	log := newLogger(cfg, e.stderr)
	logNotices(log, notices)
	tracing, err := startTracing(ctx, cfg, "api", log)
	if err != nil {
		return err
	}
	defer stopTracing(tracing, log)
	url := cfg.Redis.EffectiveURL().Reveal()
	rdb, err := openRedis(ctx, cfg, url, cfg.Redis.APIPoolSize())
	if err != nil {
		return err
	}
	defer rdb.Close()
	srv, err := startAPI(ctx, cfg, rdb, url, log, newRegistry(), false, tracing.Provider())
	if err != nil {
		return err
	}
	if cfg.LM.ProgramsPushOnStart {
		if err := pushProgramsDir(ctx, srv.programs, cfg.LM.ProgramsDir, log); err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), cfg.Queue.ShutdownTimeout)
			defer cancel()
			srv.stop(sctx)
			return err
		}
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Queue.ShutdownTimeout)
	defer cancel()
	srv.stop(sctx)
	return nil
}

// apiStack is a serving API with what it owns.
type apiStack struct {
	addr string
	// programs is the API's program registry, for PROGRAMS_DIR pushes.
	programs *programs.Registry
	stop     func(context.Context)
}

// startAPI serves the API on HOST:PORT in the background.
// tp traces the requests and enqueues; nil when tracing is off.
func startAPI(ctx context.Context, cfg *config.Config, rdb redis.UniversalClient, redisURL string, log zerolog.Logger, reg *prometheus.Registry, demo bool, tp trace.TracerProvider) (*apiStack, error) {
	jobStore, err := store.NewJobs(rdb, jobsConfig(cfg))
	if err != nil {
		return nil, err
	}
	bs, err := batches.NewStore(jobStore, batchConfig(cfg)) // batchwiring.go
	if err != nil {
		return nil, err
	}
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	builtin, err := programs.NewBuiltin()
	if err != nil {
		stopHub()
		return nil, err
	}
	registry, err := newProgramRegistry(cfg, rdb, builtin)
	if err != nil {
		stopHub()
		return nil, err
	}
	hub := store.NewHub(hubCtx, rdb, log.With().Str("component", "hub").Logger())
	go hub.Run(hubCtx)
	// The alias cache: every alias move reaches this API within a second.
	registryDone := make(chan struct{})
	go func() {
		defer close(registryDone)
		registry.Run(hubCtx, func(err error) { log.Warn().Err(err).Str("component", "programs").Msg("refresh program aliases") })
	}()

	// asynqmon opens its own pools: the same Redis as rdb, Sentinel and TLS
	// included.
	var connOpt asynq.RedisConnOpt
	if redisURL != "" || cfg.Redis.UsesSentinel() {
		opt, err := redisconn.AsynqConnOpt(redisconn.Options{
			URL: redisURL, SentinelAddrs: cfg.Redis.SentinelAddrs, SentinelMaster: cfg.Redis.SentinelMaster,
			SentinelPassword: cfg.Redis.SentinelPassword.Reveal(),
		}, 4)
		if err != nil {
			stopHub()
			return nil, err
		}
		connOpt = opt
	}
	srv, err := api.New(apiConfig(cfg), api.Deps{
		Redis: rdb, Client: store.NewClient(rdb, jobStore), Store: jobStore, Hub: hub, Batches: bs, Programs: registry,
		Log: log, Registry: reg, AsynqRedis: connOpt,
		Health: api.HealthInfo{Model: cfg.LM.Model, Optimized: cfg.LM.ProgramStatePath != "", Demo: demo},
	})
	if err != nil {
		stopHub()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr())
	if err != nil {
		stopHub()
		return nil, fmt.Errorf("listen on HOST:PORT (%s): %w", cfg.HTTPAddr(), err)
	}
	hs := srv.HTTPServer(ln.Addr().String())
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("api server stopped")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Bool("demo_lm", demo).Msg("api listening")
	return &apiStack{addr: ln.Addr().String(), programs: registry, stop: func(ctx context.Context) {
		// Stop accepting, tell SSE clients to reconnect, then drop the hub
		// and the alias cache.
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn().Err(err).Msg("api shutdown")
		}
		_ = hub.Close()
		stopHub()
		<-registryDone
	}}, nil
}

func apiConfig(cfg *config.Config) api.Config {
	return api.Config{
		MaxBodyBytes:       int64(cfg.HTTP.MaxBodyBytes),
		MaxQuestionChars:   cfg.HTTP.MaxQuestionChars,
		MaxInputBytes:      int64(cfg.HTTP.MaxInputBytes),
		PredictTimeout:     cfg.HTTP.PredictTimeout,
		DisableStreaming:   !cfg.HTTP.EnableStreaming,
		DisableMetrics:     !cfg.HTTP.EnableMetrics,
		MonitoringWritable: !cfg.Security.MonitoringReadonly,
		PrometheusURL:      cfg.Security.MonitoringPrometheusURL,
		APIKeys:            cfg.Security.APIKeys,
		AdminAPIKeys:       cfg.Security.AdminAPIKeys,
		MetricsPublic:      cfg.Security.MetricsPublic,
		CORSOrigins:        cfg.Security.CORSOrigins,
		RateLimitRPS:       cfg.Security.RateLimitRPS,
		RateLimitBurst:     cfg.Security.RateLimitBurst,
		TokenBudgetPerDay:  cfg.Security.TokenBudgetPerDay,
		MaxStreamsPerKey:   cfg.Security.SSEMaxStreamsPerKey,
		MaxWaitsPerKey:     cfg.Security.WaitMaxPerKey,
		LogQuestions:       cfg.Log.Questions,
		// Failed authentications (the client address behind proxies).
		TrustedProxies:        cfg.Security.TrustedProxies,
		AuthFailuresPerMinute: cfg.Security.AuthFailuresPerMinute,
		// Batches (the batch store's settings, shared with the workers, are
		// batchwiring.go's).
		BatchMaxItems:       cfg.Batch.MaxItems,
		BatchMaxBytes:       int64(cfg.Batch.MaxBytes),
		BatchResultsMaxWait: cfg.Batch.ResultsMaxWait,
		// Uploads in progress (api/batch_upload.go).
		BatchUploadsPerProcess: cfg.Batch.UploadsPerProcess,
		BatchUploadsPerKey:     cfg.Batch.UploadsPerKey,
		BatchUploadMinRate:     int64(cfg.Batch.UploadMinRate),
		BatchUploadGrace:       cfg.Batch.UploadGrace,
		// Provider mode needs a provider with a batch API; the workers,
		// which hold the LM's key, build it (startWorkerStack).
		NoProviderBatches: !cfg.Batch.ProviderBatches || !lmclient.HasBatchAPI(cfg.LM.Model),
	}
}

// errOpenAPI is why `qa api` refuses to start without API keys.
var errOpenAPI = errors.New("API_KEYS is not set: `qa api` will not serve an open API; " +
	"set API_KEYS (\"name:key,…\", and ADMIN_API_KEYS for the dashboard), or ALLOW_ANONYMOUS=true to run it open on purpose")

// checkOpenAPI refuses an API without keys unless ALLOW_ANONYMOUS says so
// (`qa dev` may run open; api.New warns either way).
func checkOpenAPI(cfg *config.Config) error {
	if len(cfg.Security.APIKeys) == 0 && !cfg.Security.AllowAnonymous {
		return errOpenAPI
	}
	return nil
}
