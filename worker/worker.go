package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/pricing"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// Config is a worker process's settings. Zero values mean the defaults
// given; a field set by a variable takes that variable's default from package
// config.
type Config struct {
	// Concurrency is the interactive server's slots (WORKER_CONCURRENCY).
	// Default [config.DefaultWorkerConcurrency].
	Concurrency int
	// BatchConcurrency is the batch server's slots (BATCH_CONCURRENCY);
	// negative disables the batch server. Default
	// [config.DefaultBatchConcurrency].
	BatchConcurrency int
	// PollInterval is the interactive server's TaskCheckInterval
	// (QUEUE_POLL_INTERVAL). With blocking pickup it only matters if asynq's
	// dequeue ever stops matching; default [config.DefaultQueuePollInterval].
	PollInterval time.Duration
	// DisableBlockingPickup makes the idle interactive server poll every
	// PollInterval instead of waiting in Redis for work (wake.go). Default
	// false: blocking pickup is on.
	DisableBlockingPickup bool
	// InteractiveMaxWait expires an interactive job not started within it
	// (INTERACTIVE_MAX_WAIT). Default [config.DefaultInteractiveMaxWait];
	// negative disables.
	InteractiveMaxWait time.Duration
	// ShutdownTimeout is how long in-flight jobs may finish on shutdown before
	// asynq puts them back in the queue (SHUTDOWN_TIMEOUT). Default
	// [config.DefaultShutdownTimeout].
	ShutdownTimeout time.Duration
	// RetryCheckInterval is how often due retries move back to pending
	// (asynq's DelayedTaskCheckInterval; its 5 s default makes a Retry-After
	// of 1 s late by up to 5 s). Each check costs 2 Redis commands per
	// server, so 1 s keeps an idle worker under 10 commands/s. Default 1s.
	RetryCheckInterval time.Duration
	// TokenInterval is how long later chunks of an answer are coalesced
	// before they are published. Default 25ms.
	TokenInterval time.Duration
	// InteractiveServers is how many asynq servers share the interactive
	// slots. asynq starts tasks from one serial dequeue loop per server (a
	// Redis round trip each), which caps how fast a server can fill
	// thousands of slots. Default: one per 250 slots.
	InteractiveServers int
	// DisableStreaming publishes no token events, even for jobs that ask for
	// them (ENABLE_STREAMING=false). Default false: streaming is on.
	DisableStreaming bool
	// DisableUsage leaves usage out of results (TRACK_USAGE=false): the
	// seed then answers "usage": null, as DSPy's get_lm_usage() is None.
	DisableUsage bool
	// ID names this worker in job records; default host-pid-random.
	ID string
	// LivenessTTL is how long the worker's liveness key outlives its last
	// renewal, renewed every third of it (WORKER_LIVENESS_TTL): a worker
	// silent that long is taken for dead and its running jobs run again
	// elsewhere. Default [config.DefaultWorkerLivenessTTL].
	LivenessTTL time.Duration
	// LogQuestions lets question, answer and LM text reach the logs
	// (LOG_QUESTIONS): a failed job's reason, which for a parse failure
	// quotes the LM's answer, and the question on each job's lines. Default
	// false: a failure logs its code, and the quoted text's length and hash.
	LogQuestions bool
	// BatchOwnerShare is the fraction of the batch slots one owner's batch
	// items may hold at once while other owners have batches running
	// (BATCH_OWNER_SHARE), in (0, 1]; 1 is no limit. Default
	// [config.DefaultBatchOwnerShare].
	BatchOwnerShare float64
	// ProviderConcurrency is the slots of the server that runs
	// provider-mode batches' offload tasks (jobs.QueueBatchProvider), when
	// the worker has Deps.Offload; negative: none. Default 4.
	ProviderConcurrency int
}

// WithDefaults returns c with each zero field set to its default (ID: a new
// one each call).
func (c Config) WithDefaults() Config {
	c.Concurrency = cmp.Or(c.Concurrency, config.DefaultWorkerConcurrency)
	if c.InteractiveServers <= 0 {
		c.InteractiveServers = max(1, (c.Concurrency+249)/250)
	}
	c.BatchConcurrency = cmp.Or(c.BatchConcurrency, config.DefaultBatchConcurrency)
	c.PollInterval = cmp.Or(c.PollInterval, config.DefaultQueuePollInterval)
	c.InteractiveMaxWait = cmp.Or(c.InteractiveMaxWait, config.DefaultInteractiveMaxWait)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, config.DefaultShutdownTimeout)
	c.RetryCheckInterval = cmp.Or(c.RetryCheckInterval, time.Second)
	c.TokenInterval = cmp.Or(c.TokenInterval, 25*time.Millisecond)
	c.BatchOwnerShare = cmp.Or(c.BatchOwnerShare, config.DefaultBatchOwnerShare)
	c.LivenessTTL = cmp.Or(c.LivenessTTL, config.DefaultWorkerLivenessTTL)
	c.ProviderConcurrency = cmp.Or(c.ProviderConcurrency, 4)
	if c.ID == "" {
		host, _ := os.Hostname()
		var b [3]byte
		_, _ = rand.Read(b[:])
		c.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return c
}

// Deps are what a worker runs with.
type Deps struct {
	// Redis is the queue's Redis.
	Redis  redis.UniversalClient
	Store  *store.Jobs
	Runner Runner
	Log    zerolog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// Batches runs batch items, expansions and window checks (batch.go);
	// nil: this worker serves no batch tasks.
	Batches *batches.Store
	// Offload runs provider-mode batches (offload.go); nil: this worker
	// serves none.
	Offload Offloader
	// Prices prices each completed job and batch item (LM_PRICES): its
	// result's cost. The zero Table knows no model: every cost is unknown.
	Prices pricing.Table
	// Tracing traces each attempt, its stages and its offload runs
	// (tracing.go); nil when tracing is off: no span is started.
	Tracing trace.TracerProvider
}

// Worker is one worker process's asynq servers (interactive, batch, and
// provider when it runs provider-mode batches) and its cancel listener.
type Worker struct {
	cfg  Config
	deps Deps
	log  zerolog.Logger

	mux         *asynq.ServeMux
	interactive []*asynq.Server // several dequeue loops when concurrency is high
	batch       *asynq.Server
	stop        chan struct{} // closed first on shutdown: ends blocking waits
	stopOnce    sync.Once

	// provider runs offload tasks, and inspector wakes one on a cancel
	// (offload.go); nil without Deps.Offload.
	provider  *asynq.Server
	inspector *asynq.Inspector

	// Running jobs by job id, running batch items by batch id: where a
	// cancel notice reaches them.
	jobRuns, batchRuns runs
	cancelPS           *redis.PubSub
	cancelWG           sync.WaitGroup

	// Batch items: each owner's share of the batch slots (share.go), and
	// the runs that items asking the same share (flight.go).
	shares *ownerSlots
	shared flight

	// live keeps the worker's liveness key and runs its recoverer.
	live *liveness

	// tracer is nil when tracing is off (tracing.go).
	tracer trace.Tracer
}

// New builds a worker; Start runs it.
func New(cfg Config, deps Deps) (*Worker, error) {
	cfg = cfg.WithDefaults()
	switch {
	case deps.Redis == nil:
		return nil, errors.New("new worker: Redis is required")
	case deps.Store == nil:
		return nil, errors.New("new worker: Store is required")
	case deps.Runner == nil:
		return nil, errors.New("new worker: Runner is required")
	case cfg.LivenessTTL < time.Second:
		return nil, fmt.Errorf("new worker: LivenessTTL must be at least 1s, got %v", cfg.LivenessTTL)
	case !(cfg.BatchOwnerShare > 0 && cfg.BatchOwnerShare <= 1):
		return nil, fmt.Errorf("new worker: BatchOwnerShare must be above 0 and at most 1, got %v", cfg.BatchOwnerShare)
	}
	w := &Worker{cfg: cfg, deps: deps, log: deps.Log.With().Str("worker_id", cfg.ID).Logger(), stop: make(chan struct{})}
	if deps.Tracing != nil {
		w.tracer = deps.Tracing.Tracer(tracerName)
	}
	var items itemRecoverer
	if deps.Batches != nil {
		items = deps.Batches
	}
	w.live = newLiveness(store.NewWorkers(deps.Store, cfg.LivenessTTL), items, cfg.ID, cfg.LivenessTTL, w.log, deps.Metrics)
	mux := asynq.NewServeMux()
	mux.HandleFunc(jobs.TaskTypePredict, w.handler(jobKind))
	w.registerBatch(mux) // batch items, expansions, window checks (batch.go)
	w.registerOffload(mux)

	for _, slots := range splitSlots(cfg.Concurrency, cfg.InteractiveServers) {
		w.interactive = append(w.interactive, asynq.NewServerFromRedisClient(
			&wakeClient{UniversalClient: deps.Redis, block: !cfg.DisableBlockingPickup, maxWait: 5 * time.Second, stop: w.stop},
			w.serverConfig(jobs.QueueInteractive, slots, cfg.PollInterval)))
	}
	if cfg.BatchConcurrency > 0 {
		bcfg := w.serverConfig(jobs.QueueBatch, cfg.BatchConcurrency, time.Second)
		batchQueues(&bcfg) // the batch control queue first (batch.go)
		w.batch = asynq.NewServerFromRedisClient(&wakeClient{UniversalClient: deps.Redis, stop: w.stop}, bcfg)
	}
	w.mux = mux
	return w, nil
}

func (w *Worker) serverConfig(queue string, concurrency int, poll time.Duration) asynq.Config {
	log := w.log.With().Str("queue", queue).Logger()
	return asynq.Config{
		Concurrency:              concurrency,
		Queues:                   map[string]int{queue: 1},
		TaskCheckInterval:        poll,
		DelayedTaskCheckInterval: w.cfg.RetryCheckInterval,
		ShutdownTimeout:          w.cfg.ShutdownTimeout,
		RetryDelayFunc:           retryDelay,
		IsFailure:                isFailure,
		Logger:                   asynqLogger{log: log.With().Str("component", "asynq").Logger()},
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if errors.As(err, new(handled)) || errors.Is(err, asynq.RevokeTask) {
				return // the handler logged the outcome; a revoke is a cancel or a drop
			}
			id, _ := asynq.GetTaskID(ctx)
			log.Warn().Err(err).Str("job_id", id).Msg("job attempt failed")
		}),
	}
}

// Start marks the worker alive (and starts its share of the recoverer),
// subscribes to cancel notices, then starts both servers. It returns once
// they run; Shutdown stops them.
func (w *Worker) Start(ctx context.Context) error {
	if err := w.live.start(ctx); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	w.cancelPS = w.deps.Redis.Subscribe(ctx, jobs.CancelChannel)
	if _, err := w.cancelPS.Receive(ctx); err != nil {
		_ = w.cancelPS.Close()
		w.live.stopRecovering()
		w.live.leave(context.WithoutCancel(ctx))
		return fmt.Errorf("start worker: subscribe to cancel notices: %w", err)
	}
	w.cancelWG.Add(1)
	go w.listenCancels()
	servers := append(append([]*asynq.Server(nil), w.interactive...), w.batch, w.provider)
	for i, s := range servers {
		if s == nil {
			continue
		}
		if err := s.Start(w.mux); err != nil {
			for _, started := range servers[:i] {
				if started == nil {
					continue
				}
				started.Shutdown()
			}
			return fmt.Errorf("start asynq server %d: %w", i, err)
		}
	}
	w.log.Info().Int("concurrency", w.cfg.Concurrency).Int("batch_concurrency", w.cfg.BatchConcurrency).
		Dur("poll_interval", w.cfg.PollInterval).Bool("blocking_pickup", !w.cfg.DisableBlockingPickup).Msg("worker started")
	return nil
}

// Shutdown stops fetching new jobs, lets in-flight ones finish within
// ShutdownTimeout (asynq puts the rest back in the queue), then stops
// listening for cancels. It does not close the Redis client.
func (w *Worker) Shutdown() {
	w.stopOnce.Do(func() {
		close(w.stop) // end blocking waits first, so the servers stop promptly
		w.live.stopRecovering()
		var wg sync.WaitGroup
		for _, s := range append(append([]*asynq.Server(nil), w.interactive...), w.batch, w.provider) {
			if s == nil {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.Shutdown() }()
		}
		wg.Wait()
		// Alive until the servers have stopped: the jobs they ran have
		// ended or gone back, and none is put back while it still runs.
		lctx, cancel := context.WithTimeout(context.Background(), w.cfg.LivenessTTL)
		w.live.leave(lctx)
		cancel()
		if w.cancelPS != nil {
			_ = w.cancelPS.Close()
			w.cancelWG.Wait()
		}
		w.log.Info().Msg("worker stopped")
	})
}

// listenCancels cancels the run of any job cancelled while this worker runs
// it. asynq's own CancelProcessing cannot be used: it sends the task to retry.
func (w *Worker) listenCancels() {
	defer w.cancelWG.Done()
	for msg := range w.cancelPS.Channel() {
		w.jobRuns.cancel(msg.Payload)
		// A cancelled batch's running items (batch.go): one line for them all.
		if n := w.batchRuns.cancel(msg.Payload); n > 0 {
			w.log.Info().Str("batch_id", msg.Payload).Int("running_items", n).Msg("batch cancelled: stopping its running items")
		}
		w.wakeOffload(msg.Payload)
	}
}

// runs are the running attempts by the id a cancel notice names: a job's,
// or a batch's for its items.
type runs struct {
	mu   sync.Mutex
	next uint64
	runs map[string]map[uint64]context.CancelCauseFunc
}

// track registers the cancel of a run under id until untrack.
func (r *runs) track(id string, cancel context.CancelCauseFunc) (untrack func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs == nil {
		r.runs = map[string]map[uint64]context.CancelCauseFunc{}
	}
	r.next++
	k := r.next
	if r.runs[id] == nil {
		r.runs[id] = map[uint64]context.CancelCauseFunc{}
	}
	r.runs[id][k] = cancel
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.runs[id], k)
		if len(r.runs[id]) == 0 {
			delete(r.runs, id)
		}
	}
}

// cancel stops every run tracked under id (unknown ids are ignored) and
// says how many it stopped.
func (r *runs) cancel(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.runs[id] {
		c(errCancelled)
	}
	return len(r.runs[id])
}

// splitSlots divides slots over n servers as evenly as it can.
func splitSlots(slots, n int) []int {
	n = max(1, min(n, slots))
	out := make([]int, n)
	for i := range out {
		out[i] = slots / n
		if i < slots%n {
			out[i]++
		}
	}
	return out
}
