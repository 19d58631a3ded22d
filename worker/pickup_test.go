package worker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// dequeueWatch is a go-redis hook that sees what an asynq server does on one
// queue: its dequeue script's replies and the wake client's BLMOVEs.
type dequeueWatch struct {
	pending string // asynq:{queue}:pending

	emptyDequeues atomic.Int64 // dequeue EVALSHA/EVAL answered nil (queue empty)
	cachedEmpty   atomic.Int64 // of those, EVALSHA ones: the script is cached
	blmoves       atomic.Int64 // BLMOVE waits begun on the pending list

	// refuse makes every dequeue fail without reaching Redis (see
	// startWatchedWorker's cleanup).
	refuse atomic.Bool
}

var errRefused = errors.New("dequeue refused by the test")

func newDequeueWatch(queue string) *dequeueWatch {
	return &dequeueWatch{pending: "asynq:{" + queue + "}:pending"}
}

func (h *dequeueWatch) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *dequeueWatch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *dequeueWatch) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		name := cmd.Name()
		isDequeue := (name == "evalsha" || name == "eval") && len(args) > 3 && args[3] == h.pending
		if isDequeue && h.refuse.Load() {
			return errRefused
		}
		if name == "blmove" && len(args) > 1 && args[1] == h.pending {
			h.blmoves.Add(1)
		}
		// The reply's error is what next returns: this go-redis sets it on
		// cmd only after the hooks have run.
		err := next(ctx, cmd)
		// EVALSHA sha numkeys pending paused active lease …: asynq's dequeue.
		if isDequeue && errors.Is(err, redis.Nil) {
			h.emptyDequeues.Add(1)
			if name == "evalsha" {
				h.cachedEmpty.Add(1)
			}
		}
		return err
	}
}

// watchedClient is a new client on db's database with h installed.
func watchedClient(tb testing.TB, db *redistest.DB, h redis.Hook) *redis.Client {
	tb.Helper()
	c := redis.NewClient(db.Options())
	c.AddHook(h)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// waitUntil polls cond until it holds; the deadline is a hang guard.
func waitUntil(tb testing.TB, what string, deadline time.Duration, cond func() bool) {
	tb.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			tb.Fatalf("%s: not within %v", what, deadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cacheDequeueScript puts asynq's dequeue script in the Redis server's script
// cache. A server's very first dequeue otherwise gets NOSCRIPT and goes
// through EVAL, which the wake client does not wrap, so that one poll would
// sleep the whole TaskCheckInterval (harmless at 20 ms, a minute here). A
// throwaway asynq server on a queue of its own polls until one EVALSHA of the
// dequeue script has been answered.
func cacheDequeueScript(t *testing.T, db *redistest.DB) {
	t.Helper()
	h := newDequeueWatch("warmup")
	srv := asynq.NewServerFromRedisClient(watchedClient(t, db, h), asynq.Config{
		Concurrency: 1, Queues: map[string]int{"warmup": 1}, TaskCheckInterval: 5 * time.Millisecond,
		LogLevel: asynq.FatalLevel,
	})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	waitUntil(t, "asynq's dequeue script cached", 20*time.Second, func() bool { return h.cachedEmpty.Load() > 0 })
}

// startWatchedWorker runs a worker (interactive server only) whose Redis
// client is watched on the interactive queue.
func (b *bundle) startWatchedWorker(t *testing.T, cfg worker.Config) *dequeueWatch {
	t.Helper()
	h := newDequeueWatch(jobs.QueueInteractive)
	cfg.BatchConcurrency = -1
	cfg.ShutdownTimeout = 5 * time.Second
	w, err := worker.New(cfg, worker.Deps{Redis: watchedClient(t, b.db, h), Store: b.store, Runner: b.runner, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// asynq cannot interrupt the sleep that follows an empty dequeue, and
		// its Shutdown waits for it: up to 1.5 × PollInterval, 90 s in
		// TestBlockingPickupBlocks. While the wake client still waits for
		// work (within 5 s of the last pickup), a push wakes it and the
		// refused dequeue that follows is an error, after which asynq does
		// not sleep: Shutdown then returns at once. (Otherwise it just takes
		// longer.) With the default 20 ms none of this matters.
		if !cfg.DisableBlockingPickup {
			h.refuse.Store(true)
			_ = b.db.Client.LPush(context.Background(), h.pending, "wake-for-shutdown").Err()
		}
		start := time.Now()
		w.Shutdown()
		t.Logf("worker shutdown took %v", time.Since(start).Round(time.Millisecond))
	})
	return h
}

// waitEndWithin is waitEnd with a deadline of the caller's choosing.
func (b *bundle) waitEndWithin(t *testing.T, id string, deadline time.Duration) *jobs.Job {
	t.Helper()
	var j *jobs.Job
	waitUntil(t, "job "+id+" ended", deadline, func() bool {
		var err error
		if j, err = b.store.Get(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		return j.Status.Terminal()
	})
	return j
}

// TestBlockingPickupBlocks proves that the wake client (wake.go) makes an idle
// interactive server wait in Redis for work instead of polling.
//
// The server polls every minute: after an empty poll asynq sleeps 30–90 s, so
// a job submitted once the server is idle can only be picked up within the
// 20 s deadline if the server was blocked in BLMOVE and woke up. This test
// depends on asynq's dequeue call shape (one EVALSHA per queue with keys
// pending, paused, active, lease: see isDequeue). If a future asynq changes
// it, the wake client stops recognising the dequeue, the server falls back to
// polling, and this test fails: pin asynq and fix wake.go before upgrading.
func TestBlockingPickupBlocks(t *testing.T) {
	t.Parallel()
	t.Run("blocking", func(t *testing.T) {
		t.Parallel()
		b := setup(t, jobs.Config{})
		cacheDequeueScript(t, b.db)
		h := b.startWatchedWorker(t, worker.Config{PollInterval: time.Minute})
		// Idle: the first dequeue found nothing and the server now waits in
		// BLMOVE. Submit at once: the wait gives up after 5 s, and then this
		// server would sleep 30–90 s.
		waitUntil(t, "the idle server blocks in BLMOVE", 20*time.Second, func() bool { return h.blmoves.Load() > 0 })
		if h.emptyDequeues.Load() == 0 {
			t.Fatal("BLMOVE without an empty dequeue before it")
		}
		id := b.submit(t, jobs.SubmitRequest{Question: "Why is the sky blue?"})
		j := b.waitEndWithin(t, id, 20*time.Second)
		if j.Status != jobs.StatusCompleted || j.Attempts != 1 {
			t.Fatalf("job = %+v %+v", j, j.Error)
		}
	})
	// The control: the same setup with blocking off and a short interval
	// picks the job up by polling, and never issues a BLMOVE.
	t.Run("polling", func(t *testing.T) {
		t.Parallel()
		b := setup(t, jobs.Config{})
		h := b.startWatchedWorker(t, worker.Config{PollInterval: 20 * time.Millisecond, DisableBlockingPickup: true})
		waitUntil(t, "the idle server polls an empty queue", 20*time.Second, func() bool { return h.emptyDequeues.Load() > 0 })
		id := b.submit(t, jobs.SubmitRequest{Question: "Why is the sky blue?"})
		j := b.waitEndWithin(t, id, 20*time.Second)
		if j.Status != jobs.StatusCompleted || j.Attempts != 1 {
			t.Fatalf("job = %+v %+v", j, j.Error)
		}
		if n := h.blmoves.Load(); n != 0 {
			t.Fatalf("%d BLMOVEs with blocking pickup disabled", n)
		}
	})
}

// ---------------------------------------------------------------------------
// BenchmarkPickup

const (
	pickupSamples = 100
	// idleWindow is one heartbeat period (asynq beats every 5 s), so each
	// window holds the same background work.
	idleWindow = 5 * time.Second
)

type pickupRow struct {
	name          string
	p50, p99, max time.Duration
	idleCmds      float64
}

// BenchmarkPickup measures, for one idle asynq server, the pickup latency of
// a task enqueued into its empty queue and the Redis commands it costs while
// idle: our worker with blocking pickup at the default QUEUE_POLL_INTERVAL
// (20 ms), our worker polling at 20 ms, and a bare asynq server polling at
// 5 ms (the baseline of PICKUP-AND-DASHBOARD.md §1.3a, in the same run). It
// reports p50_ms, p99_ms and idle_cmds_per_s; each variant logs its figures
// and the idle commands by name, and -v also prints a summary table.
//
//	go test -run '^$' -bench Pickup -benchtime 1x ./worker/
//
// Pickup latency is enqueue → handler start, where
//   - enqueue is the moment the asynq enqueue script is sent to Redis (a hook
//     on the submitting client; for our worker that is after jobs.Client has
//     written the record, so the record's own round trip is not counted), and
//   - handler start is the first line of code that runs for the task: the
//     no-op handler for bare asynq, and Runner.Run (an instant fake runner)
//     for our worker. Our figure therefore also includes our real handler's
//     work before the run: decoding the payload and the record's start
//     script (one Redis round trip).
//
// Gaps between enqueues are random, 20–80 ms: at least one poll interval, so
// each enqueue meets an idle server at a random phase of its poll cycle.
//
// Idle commands/s comes from INFO stats total_commands_processed on a private
// redis-server, over idleWindow with nothing but the one asynq server (and,
// for our worker, its idle cancel subscription) connected. Commands run by
// scripts count too, so an empty poll is 3 (EVALSHA, EXISTS, RPOPLPUSH), as in
// the shared notes. Each variant runs one asynq server: the worker's batch
// server is disabled. Each b.N is 100 samples plus a 5 s idle window.
func BenchmarkPickup(b *testing.B) {
	rows := map[string]pickupRow{}
	var order []string
	variants := []struct {
		name  string
		start func(b *testing.B, db *redistest.DB, started chan<- time.Time) (enqueue func(context.Context) error)
	}{
		{"worker_blocking_20ms", func(b *testing.B, db *redistest.DB, started chan<- time.Time) func(context.Context) error {
			return startBenchWorker(b, db, started, false)
		}},
		{"worker_polling_20ms", func(b *testing.B, db *redistest.DB, started chan<- time.Time) func(context.Context) error {
			return startBenchWorker(b, db, started, true)
		}},
		{"bare_asynq_5ms", startBareAsynq},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			db := redistest.NewServer(b)
			clock := &enqueueClock{}
			sub := watchedClient(b, db, clock)
			started := make(chan time.Time, 1)
			// The variant submits through sub, so the clock sees its enqueues.
			enqueue := v.start(b, &redistest.DB{Addr: db.Addr, Index: db.Index, Client: sub, Server: db.Server}, started)
			ctx := context.Background()
			sample := func() time.Duration {
				clock.at.Store(0)
				if err := enqueue(ctx); err != nil {
					b.Fatal(err)
				}
				select {
				case s := <-started:
					at := clock.at.Load()
					if at == 0 {
						b.Fatal("the enqueue script was never seen")
					}
					return s.Sub(time.Unix(0, at))
				case <-time.After(30 * time.Second):
					b.Fatal("task not started within 30s")
					return 0
				}
			}
			// Warm up: scripts cached, queue registered, connections open.
			for range 5 {
				sample()
			}
			time.Sleep(time.Second) // let the server settle into idling
			idle, breakdown := idleCommandsPerSecond(b, db)

			b.ResetTimer()
			lat := make([]time.Duration, 0, pickupSamples*b.N)
			for range pickupSamples * b.N {
				time.Sleep(20*time.Millisecond + rand.N(60*time.Millisecond))
				lat = append(lat, sample())
			}
			b.StopTimer()
			slices.Sort(lat)
			r := pickupRow{name: v.name, p50: percentile(lat, 0.50), p99: percentile(lat, 0.99), max: lat[len(lat)-1], idleCmds: idle}
			b.ReportMetric(ms(r.p50), "p50_ms")
			b.ReportMetric(ms(r.p99), "p99_ms")
			b.ReportMetric(idle, "idle_cmds_per_s")
			b.ReportMetric(0, "ns/op") // meaningless here
			b.Logf("%s: p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d samples; idle %.1f commands/s (%s)",
				v.name, ms(r.p50), ms(r.p99), ms(r.max), len(lat), idle, breakdown)
			if _, ok := rows[v.name]; !ok {
				order = append(order, v.name)
			}
			rows[v.name] = r
		})
	}
	var tb strings.Builder
	fmt.Fprintf(&tb, "pickup, %d samples each, random 20–80 ms gaps; idle load over %v\n", pickupSamples, idleWindow)
	fmt.Fprintf(&tb, "%-22s %9s %9s %9s %16s\n", "variant", "p50_ms", "p99_ms", "max_ms", "idle_cmds_per_s")
	for _, name := range order {
		r := rows[name]
		fmt.Fprintf(&tb, "%-22s %9.2f %9.2f %9.2f %16.1f\n", r.name, ms(r.p50), ms(r.p99), ms(r.max), r.idleCmds)
	}
	b.Log("\n" + tb.String())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// enqueueClock notes when an asynq enqueue script is first sent (EVALSHA, or
// EVAL after NOSCRIPT: the first counts). Its first key is asynq:{q}:t:<id>.
type enqueueClock struct{ at atomic.Int64 }

func (c *enqueueClock) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *enqueueClock) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (c *enqueueClock) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
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

// idleCommandsPerSecond counts the commands Redis processes over idleWindow
// (commands run by scripts included, as INFO counts them), and says which.
// The second INFO's figure includes the first INFO, which is subtracted.
func idleCommandsPerSecond(b *testing.B, db *redistest.DB) (perSecond float64, breakdown string) {
	b.Helper()
	admin := redis.NewClient(&redis.Options{Addr: db.Addr})
	defer admin.Close()
	info := func(section string) string {
		s, err := admin.Info(context.Background(), section).Result()
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	total := func(s string) int64 {
		for _, line := range strings.Split(s, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					b.Fatal(err)
				}
				return n
			}
		}
		b.Fatal("INFO stats has no total_commands_processed")
		return 0
	}
	// cmdstat_evalsha:calls=12,usec=… → evalsha: 12
	calls := func(s string) map[string]int64 {
		m := map[string]int64{}
		for _, line := range strings.Split(s, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
			m[strings.TrimPrefix(name, "cmdstat_")] = n
		}
		return m
	}
	c0 := calls(info("commandstats"))
	n0, t0 := total(info("stats")), time.Now()
	time.Sleep(idleWindow)
	n1, t1 := total(info("stats")), time.Now()
	c1 := calls(info("commandstats"))
	secs := t1.Sub(t0).Seconds()
	var parts []string
	for name, n := range c1 {
		if d := n - c0[name]; d > 0 && name != "info" {
			parts = append(parts, fmt.Sprintf("%s %.1f", name, float64(d)/secs))
		}
	}
	slices.Sort(parts)
	return float64(n1-n0-1) / secs, strings.Join(parts, ", ")
}

// startRunner is an instant Runner that reports when each run starts.
type startRunner struct{ started chan<- time.Time }

func (r startRunner) Run(context.Context, string, worker.RunOptions) (*worker.RunResult, error) {
	now := time.Now()
	select {
	case r.started <- now:
	default:
	}
	return &worker.RunResult{Outputs: map[string]any{"answer": "42"}, Usage: []byte("{}")}, nil
}

func (startRunner) Model() string       { return "fake/instant" }
func (startRunner) StateSHA256() string { return strings.Repeat("0", 64) }

// startBenchWorker runs our worker (interactive server only, the default
// 20 ms QUEUE_POLL_INTERVAL) with an instant runner; db.Client is the watched
// submitting client.
func startBenchWorker(b *testing.B, db *redistest.DB, started chan<- time.Time, disableBlocking bool) func(context.Context) error {
	b.Helper()
	store, err := jobs.NewStore(redis.NewClient(db.Options()), jobs.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Redis().Close() })
	rdb := redis.NewClient(db.Options())
	b.Cleanup(func() { _ = rdb.Close() })
	w, err := worker.New(worker.Config{BatchConcurrency: -1, DisableBlockingPickup: disableBlocking, ShutdownTimeout: 5 * time.Second},
		worker.Deps{Redis: rdb, Store: store, Runner: startRunner{started}, Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Shutdown)
	client := jobs.NewClient(db.Client, store)
	return func(ctx context.Context) error {
		_, err := client.Submit(ctx, jobs.SubmitRequest{Question: "q"})
		return err
	}
}

// startBareAsynq runs a plain asynq server polling every 5 ms with a no-op
// handler: the baseline from PICKUP-AND-DASHBOARD.md §1.3a, same run.
func startBareAsynq(b *testing.B, db *redistest.DB, started chan<- time.Time) func(context.Context) error {
	b.Helper()
	rdb := redis.NewClient(db.Options())
	b.Cleanup(func() { _ = rdb.Close() })
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 100, Queues: map[string]int{"bench": 1}, TaskCheckInterval: 5 * time.Millisecond,
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
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	client := asynq.NewClientFromRedisClient(db.Client)
	return func(ctx context.Context) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("bench", nil), asynq.Queue("bench"))
		return err
	}
}
