package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/offload"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// runWorker is `qa worker`: one worker process (its interactive and batch asynq
// servers) plus its /livez, /readyz and /metrics on WORKER_METRICS_PORT, until
// SIGTERM.
func runWorker(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa worker", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	serverUsage(fs, e.stderr, "qa worker", "Runs one worker process (its interactive and batch queues) until SIGTERM:\nit takes jobs from Redis and runs the QA program against the LM.", workerHelp)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, notices, err := loadConfig(e)
	if err != nil {
		return errConfig(err)
	}
	log := newLogger(cfg, e.stderr).With().Str("component", "worker").Logger()
	logNotices(log, notices)
	tracing, err := startTracing(ctx, cfg, "worker", log)
	if err != nil {
		return err
	}
	defer stopTracing(tracing, log)
	rdb, err := openRedis(ctx, cfg, cfg.Redis.EffectiveURL().Reveal(), cfg.Redis.WorkerPoolSize(cfg.Queue))
	if err != nil {
		return err
	}
	defer rdb.Close()

	reg := newRegistry()
	stack, err := startWorkerStack(ctx, cfg, lookupEnv(e), rdb, log, reg, nil, tracing.Provider())
	if err != nil {
		return err
	}
	health, err := serveHealth(cfg.WorkerMetricsAddr(), worker.HealthHandler(rdb, reg, log), log)
	if err != nil {
		stack.stop()
		return err
	}
	<-ctx.Done()
	log.Info().Msg("shutting down: no new jobs; in-flight jobs finish or go back to the queue")
	stack.stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return health.Shutdown(sctx)
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// workerStack is a running worker with what it owns.
type workerStack struct {
	worker       *worker.Worker
	closeLM      func()
	stopPrograms func()
}

func (s *workerStack) stop() {
	s.worker.Shutdown()
	s.stopPrograms()
	s.closeLM()
}

// startWorkerStack builds the LM client, the program and the worker, and
// starts the worker. demo, when set, replaces the configured LM with qa
// dev's demo LM, whose answers are cached in a namespace of their own. tp
// traces attempts, stages and LM calls; nil when tracing is off.
func startWorkerStack(ctx context.Context, cfg *config.Config, lookup config.Lookup, rdb redis.UniversalClient, log zerolog.Logger, reg prometheus.Registerer, demo *lmEndpoint, tp trace.TracerProvider) (*workerStack, error) {
	lcfg := lmConfig(cfg, lookup)
	if demo != nil {
		lcfg.APIBase, lcfg.APIKey, lcfg.CacheNamespace = demo.base, demo.key, demoCacheNamespace
	}
	lm, closeLM, err := newLM(ctx, cfg, lcfg, rdb, log, reg)
	if err != nil {
		return nil, fmt.Errorf("configure the LM: %w", err)
	}
	prog, err := loadProgram(cfg, log)
	if err != nil {
		closeLM()
		return nil, err
	}
	qa, err := worker.BuiltinQA(prog)
	if err != nil {
		closeLM()
		return nil, err
	}
	// Pushed programs come from the registry, compiled on demand; qa's
	// version "" (no qa pushed, or a job queued before programs had
	// versions) is the built-in program with PROGRAM_STATE_PATH's state.
	registry, err := newProgramRegistry(cfg, rdb, worker.StaticPrograms{{Name: jobs.ProgramQA}: qa})
	if err != nil {
		closeLM()
		return nil, err
	}
	jobStore, err := store.NewJobs(rdb, jobsConfig(cfg))
	if err != nil {
		closeLM()
		return nil, err
	}
	bs, err := batches.NewStore(jobStore, batchConfig(cfg)) // batchwiring.go
	if err != nil {
		closeLM()
		return nil, err
	}
	offloader, err := newOffloader(cfg, lm, bs, registry, log, reg)
	if err != nil {
		closeLM()
		return nil, err
	}
	w, err := worker.New(workerConfig(cfg), worker.Deps{
		Redis: rdb, Store: jobStore, Runner: worker.NewRunner(registry, lm),
		Log: log, Metrics: worker.NewMetrics(reg), Batches: bs, Offload: offloader,
	})
	if err != nil {
		closeLM()
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		closeLM()
		return nil, err
	}
	// A version a push prunes leaves this worker's compiled cache, so its
	// queued jobs fail as program_version_gone on every worker alike.
	followCtx, stopFollow := context.WithCancel(context.WithoutCancel(ctx))
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		registry.FollowPrunes(followCtx, func(err error) {
			log.Warn().Err(err).Str("component", "programs").Msg("follow program pushes")
		})
	}()
	log.Info().Str("model", lm.Model()).Str("cache_namespace", lm.CacheStores().Namespace).
		Str("program_state_sha256", prog.Provenance()).Msg("worker ready")
	return &workerStack{worker: w, closeLM: closeLM, stopPrograms: func() { stopFollow(); <-followed }}, nil
}

// lmEndpoint points the LM client somewhere else than the configuration says.
type lmEndpoint struct{ base, key string }

// demoCacheNamespace holds the demo LM's cached answers: one namespace
// whatever port the demo LM gets, and never the real model's (its answers
// are made up, under the default model's name).
const demoCacheNamespace = "demo"

// serveHealth serves h on addr in the background.
func serveHealth(addr string, h http.Handler, log zerolog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on WORKER_METRICS_PORT (%s): %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("health server stopped")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("worker health and metrics listening")
	return srv, nil
}

// newOffloader is the runner of provider-mode batches, over the LM
// provider's batch API; nil (no provider mode on this worker) when the
// provider has none.
func newOffloader(cfg *config.Config, lm *lmclient.Client, bs *batches.Store, programs offload.Programs, log zerolog.Logger, reg prometheus.Registerer) (worker.Offloader, error) {
	provider, err := lm.BatchAPI()
	var ce *lmclient.ConfigError
	if errors.As(err, &ce) {
		log.Info().Str("reason", ce.Error()).Msg("provider-mode batches are not served: the LM's provider has no batch API")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("configure the provider's batch API: %w", err)
	}
	runner, err := offload.New(offloadConfig(cfg), offload.Deps{
		Batches: bs, Programs: programs, LM: lm, Provider: provider, Prices: cfg.LM.Prices,
		Log: log.With().Str("component", "offload").Logger(), Metrics: offload.NewMetrics(reg),
	})
	if err != nil {
		return nil, fmt.Errorf("configure the offload runner: %w", err)
	}
	return runner, nil
}
