package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
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
	testwait.Within(t, 20*time.Second, "asynq's dequeue script cached", func() bool { return h.cachedEmpty.Load() > 0 })
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
		b := setup(t, store.Config{})
		cacheDequeueScript(t, b.db)
		h := b.startWatchedWorker(t, worker.Config{PollInterval: time.Minute})
		// Idle: the first dequeue found nothing and the server now waits in
		// BLMOVE. Submit at once: the wait gives up after 5 s, and then this
		// server would sleep 30–90 s.
		testwait.Within(t, 20*time.Second, "the idle server blocks in BLMOVE", func() bool { return h.blmoves.Load() > 0 })
		if h.emptyDequeues.Load() == 0 {
			t.Fatal("BLMOVE without an empty dequeue before it")
		}
		id := b.submit(t, ask("Why is the sky blue?", "", jobs.Options{}))
		j := b.waitEndWithin(t, id, 20*time.Second)
		if j.Status != jobs.StatusCompleted || j.Attempts != 1 {
			t.Fatalf("job = %+v %+v", j, j.Error)
		}
	})
	// The control: the same setup with blocking off and a short interval
	// picks the job up by polling, and never issues a BLMOVE.
	t.Run("polling", func(t *testing.T) {
		t.Parallel()
		b := setup(t, store.Config{})
		h := b.startWatchedWorker(t, worker.Config{PollInterval: 20 * time.Millisecond, DisableBlockingPickup: true})
		testwait.Within(t, 20*time.Second, "the idle server polls an empty queue", func() bool { return h.emptyDequeues.Load() > 0 })
		id := b.submit(t, ask("Why is the sky blue?", "", jobs.Options{}))
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

// BenchmarkPickup measures, for one idle asynq server, the pickup latency of
// a task enqueued into its empty queue and the Redis commands it costs while
// idle: our worker with blocking pickup at the default QUEUE_POLL_INTERVAL
// (20 ms), our worker polling at 20 ms, and a bare asynq server polling at
// 5 ms (the baseline of PICKUP-AND-DASHBOARD.md §1.3a, in the same run). It
// reports p50_ms, p99_ms and idle_cmds_per_s; each variant logs its figures
// and the idle commands by name, and -v also prints a summary table. The
// measurement is benchkit.MeasurePickup, which `qa-bench --scenarios pickup`
// runs too (see there for what is timed).
//
//	go test -run '^$' -bench Pickup -benchtime 1x ./worker/
//
// Each variant runs one asynq server on a private redis-server (the worker's
// batch server is disabled); each b.N is 100 samples plus a 5 s idle window.
func BenchmarkPickup(b *testing.B) {
	var rows []benchkit.PickupResult
	for _, v := range []benchkit.PickupVariant{
		benchkit.PickupWorker("worker_blocking_20ms", false),
		benchkit.PickupWorker("worker_polling_20ms", true),
		benchkit.PickupBareAsynq("bare_asynq_5ms", 5*time.Millisecond),
	} {
		b.Run(v.Name, func(b *testing.B) {
			db := redistest.NewServer(b)
			b.ResetTimer()
			r, err := benchkit.MeasurePickup(context.Background(), v, db.Options(), pickupSamples*b.N, idleWindow)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			l := r.Latency
			b.ReportMetric(benchkit.MS(l.P50), "p50_ms")
			b.ReportMetric(benchkit.MS(l.P99), "p99_ms")
			b.ReportMetric(r.IdleCmds, "idle_cmds_per_s")
			b.ReportMetric(0, "ns/op") // meaningless here
			b.Logf("%s: p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d samples; idle %.1f commands/s (%s)",
				v.Name, benchkit.MS(l.P50), benchkit.MS(l.P99), benchkit.MS(l.Max), l.N, r.IdleCmds, r.IdleDetails)
			rows = append(rows, r)
		})
	}
	var tb strings.Builder
	fmt.Fprintf(&tb, "pickup, %d samples each, random 20–80 ms gaps; idle load over %v\n", pickupSamples, idleWindow)
	fmt.Fprintf(&tb, "%-22s %9s %9s %9s %16s\n", "variant", "p50_ms", "p99_ms", "max_ms", "idle_cmds_per_s")
	for _, r := range rows {
		l := r.Latency
		fmt.Fprintf(&tb, "%-22s %9.2f %9.2f %9.2f %16.1f\n", r.Name, benchkit.MS(l.P50), benchkit.MS(l.P99), benchkit.MS(l.Max), r.IdleCmds)
	}
	b.Log("\n" + tb.String())
}
