package benchkit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// PickupVariant is one way of running an idle asynq server for the pickup
// measurement.
type PickupVariant struct {
	Name string
	// Start runs the server on opts's database. Tasks are submitted through
	// submit (whose enqueues the clock sees); started receives the moment
	// each task's handler begins. stop ends the server.
	Start func(ctx context.Context, opts *redis.Options, submit redis.UniversalClient, started chan<- time.Time) (enqueue func(context.Context) error, stop func(), err error)
}

// PickupResult is one variant's pickup latency and idle load.
type PickupResult struct {
	Name        string        `json:"name"`
	Latency     Summary       `json:"latency"`
	IdleCmds    float64       `json:"idle_cmds_per_s"`
	IdleDetails string        `json:"idle_breakdown"`
	IdleWindow  time.Duration `json:"idle_window_ns"`
}

// PickupWorker is our worker (interactive server only, the default 20 ms
// QUEUE_POLL_INTERVAL, blocking pickup unless disabled) with an instant runner.
func PickupWorker(name string, disableBlocking bool) PickupVariant {
	return PickupVariant{Name: name, Start: func(ctx context.Context, opts *redis.Options, submit redis.UniversalClient, started chan<- time.Time) (func(context.Context) error, func(), error) {
		storeRDB := redis.NewClient(opts)
		jobStore, err := store.NewJobs(storeRDB, store.Config{})
		if err != nil {
			_ = storeRDB.Close()
			return nil, nil, err
		}
		rdb := redis.NewClient(opts)
		w, err := worker.New(worker.Config{BatchConcurrency: -1, DisableBlockingPickup: disableBlocking, ShutdownTimeout: 5 * time.Second},
			worker.Deps{Redis: rdb, Store: jobStore, Runner: StartRunner{Started: started}, Log: zerolog.Nop()})
		if err == nil {
			err = w.Start(ctx)
		}
		if err != nil {
			_ = rdb.Close()
			_ = storeRDB.Close()
			return nil, nil, err
		}
		client := store.NewClient(submit, jobStore)
		enqueue := func(ctx context.Context) error {
			_, err := client.Submit(ctx, store.SubmitRequest{Spec: jobs.Spec{ClientSpec: jobs.QuestionSpec("q")}})
			return err
		}
		return enqueue, func() { w.Shutdown(); _ = rdb.Close(); _ = storeRDB.Close() }, nil
	}}
}

// PickupBareAsynq is a plain asynq server polling every interval with a
// no-op handler: the baseline of PICKUP-AND-DASHBOARD.md §1.3a.
func PickupBareAsynq(name string, interval time.Duration) PickupVariant {
	return PickupVariant{Name: name, Start: func(ctx context.Context, opts *redis.Options, submit redis.UniversalClient, started chan<- time.Time) (func(context.Context) error, func(), error) {
		rdb := redis.NewClient(opts)
		srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
			Concurrency: 100, Queues: map[string]int{"bench": 1}, TaskCheckInterval: interval,
			LogLevel: asynq.FatalLevel,
		})
		if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
			now := time.Now()
			select {
			case started <- now:
			default:
			}
			return nil
		})); err != nil {
			_ = rdb.Close()
			return nil, nil, err
		}
		client := asynq.NewClientFromRedisClient(submit)
		enqueue := func(ctx context.Context) error {
			_, err := client.EnqueueContext(ctx, asynq.NewTask("bench", nil), asynq.Queue("bench"))
			return err
		}
		return enqueue, func() { srv.Shutdown(); _ = rdb.Close() }, nil
	}}
}

// MeasurePickup runs v on opts's database, which must be alone on its
// redis-server (the idle load is read from the server's INFO), and returns
// the pickup latency of samples tasks, each enqueued after a random 20–80 ms
// gap (at least one poll interval, so each meets an idle server at a random
// phase of its poll cycle), and the Redis commands per second over idleWindow
// with nothing but the idle server connected.
//
// Pickup latency is enqueue → handler start, where enqueue is the moment the
// asynq enqueue script is sent to Redis (for our worker that is after the job
// record is written, so the record's round trip is not counted), and handler
// start is the first code that runs for the task: the no-op handler for bare
// asynq, the Runner for our worker, which therefore also counts the payload
// decoding and the record's start script.
func MeasurePickup(ctx context.Context, v PickupVariant, opts *redis.Options, samples int, idleWindow time.Duration) (PickupResult, error) {
	clock := &EnqueueClock{}
	submit := redis.NewClient(opts)
	submit.AddHook(clock)
	defer submit.Close()
	started := make(chan time.Time, 1)
	enqueue, stop, err := v.Start(ctx, opts, submit, started)
	if err != nil {
		return PickupResult{}, fmt.Errorf("start %s: %w", v.Name, err)
	}
	defer stop()
	sample := func() (time.Duration, error) {
		clock.Reset()
		if err := enqueue(ctx); err != nil {
			return 0, err
		}
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		select {
		case s := <-started:
			at, ok := clock.At()
			if !ok {
				return 0, errors.New("the enqueue script was never seen")
			}
			return s.Sub(at), nil
		case <-t.C:
			return 0, errors.New("task not started within 30s")
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	// Warm up: scripts cached, queue registered, connections open.
	for range 5 {
		if _, err := sample(); err != nil {
			return PickupResult{}, err
		}
	}
	if err := sleepCtx(ctx, time.Second); err != nil { // let the server settle into idling
		return PickupResult{}, err
	}
	idle, breakdown, err := IdleCommandsPerSecond(ctx, opts.Addr, idleWindow)
	if err != nil {
		return PickupResult{}, err
	}
	lat := make([]time.Duration, 0, samples)
	for range samples {
		if err := sleepCtx(ctx, 20*time.Millisecond+rand.N(60*time.Millisecond)); err != nil {
			return PickupResult{}, err
		}
		d, err := sample()
		if err != nil {
			return PickupResult{}, err
		}
		lat = append(lat, d)
	}
	return PickupResult{Name: v.Name, Latency: Summarize(lat), IdleCmds: idle, IdleDetails: breakdown, IdleWindow: idleWindow}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StartRunner is an instant worker.Runner that reports when each run starts.
type StartRunner struct{ Started chan<- time.Time }

// Run reports the start (if anyone listens) and answers at once.
func (r StartRunner) Run(context.Context, jobs.Inputs, worker.RunOptions) (*worker.RunResult, error) {
	now := time.Now()
	select {
	case r.Started <- now:
	default:
	}
	return &worker.RunResult{Outputs: jobs.Outputs{{Name: "answer", Value: "42"}}, Usage: []byte("{}")}, nil
}

// Model names the fake model.
func (StartRunner) Model() string { return "fake/instant" }

// StateSHA256 is a fixed digest.
func (StartRunner) StateSHA256() string { return strings.Repeat("0", 64) }

// EnqueueClock is a go-redis hook that notes when an asynq enqueue script is
// first sent (EVALSHA, or EVAL after NOSCRIPT: the first counts). Its first
// key is asynq:{q}:t:<id>.
type EnqueueClock struct{ at atomic.Int64 }

// Reset forgets the last enqueue.
func (c *EnqueueClock) Reset() { c.at.Store(0) }

// At is when the enqueue script was sent since the last Reset.
func (c *EnqueueClock) At() (time.Time, bool) {
	ns := c.at.Load()
	return time.Unix(0, ns), ns != 0
}

// DialHook passes through.
func (c *EnqueueClock) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessPipelineHook passes through.
func (c *EnqueueClock) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// ProcessHook notes the first enqueue script.
func (c *EnqueueClock) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			if args := cmd.Args(); len(args) > 3 {
				if k, _ := args[3].(string); strings.HasPrefix(k, "asynq:{") && strings.Contains(k, "}:t:") {
					c.at.CompareAndSwap(0, time.Now().UnixNano())
				}
			}
		}
		return next(ctx, cmd)
	}
}

// IdleCommandsPerSecond counts the commands the Redis server at addr
// processes over window (commands run by scripts included, as INFO counts
// them: an empty asynq poll is 3, EVALSHA, EXISTS and RPOPLPUSH), and says
// which. The second INFO's figure includes the first INFO, which is
// subtracted.
func IdleCommandsPerSecond(ctx context.Context, addr string, window time.Duration) (perSecond float64, breakdown string, err error) {
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	c0, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, "", err
	}
	s0, err := admin.Info(ctx, "stats").Result()
	if err != nil {
		return 0, "", err
	}
	t0 := time.Now()
	if err := sleepCtx(ctx, window); err != nil {
		return 0, "", err
	}
	s1, err := admin.Info(ctx, "stats").Result()
	if err != nil {
		return 0, "", err
	}
	t1 := time.Now()
	c1, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, "", err
	}
	n0, err0 := totalCommands(s0)
	n1, err1 := totalCommands(s1)
	if err := errors.Join(err0, err1); err != nil {
		return 0, "", err
	}
	secs := t1.Sub(t0).Seconds()
	before, after := commandCalls(c0), commandCalls(c1)
	var parts []string
	for name, n := range after {
		if d := n - before[name]; d > 0 && name != "info" {
			parts = append(parts, fmt.Sprintf("%s %.1f", name, float64(d)/secs))
		}
	}
	slices.Sort(parts)
	return float64(n1-n0-1) / secs, strings.Join(parts, ", "), nil
}

func totalCommands(info string) (int64, error) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO stats has no total_commands_processed")
}

// CommandCalls is the Redis server's calls per command (INFO commandstats,
// commands run by scripts included).
func CommandCalls(ctx context.Context, addr string) (map[string]int64, error) {
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	s, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	return commandCalls(s), nil
}

// commandCalls reads cmdstat_evalsha:calls=12,usec=… as evalsha: 12.
func commandCalls(info string) map[string]int64 {
	m := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		m[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return m
}

// TotalCommands is the Redis server's total_commands_processed (commands run
// by scripts included).
func TotalCommands(ctx context.Context, addr string) (int64, error) {
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	s, err := admin.Info(ctx, "stats").Result()
	if err != nil {
		return 0, err
	}
	return totalCommands(s)
}
