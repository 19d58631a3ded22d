package worker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// refuseRecordOps refuses the first n runs of each named record-script op
// (the script's first argument), as a Redis that has gone away would.
type refuseRecordOps struct {
	mu   sync.Mutex
	left map[string]int
}

func (h *refuseRecordOps) hook() redis.Hook {
	return redistest.RefuseScripts{Match: func(keys []string, args []any) bool {
		if len(keys) == 0 || !strings.HasPrefix(keys[0], "qa:job:") || len(args) == 0 {
			return false
		}
		op, _ := args[0].(string)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.left[op] > 0 {
			h.left[op]--
			return true
		}
		return false
	}}
}

func (h *refuseRecordOps) remaining() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, v := range h.left {
		n += v
	}
	return n
}

// TestRecordWritesWaitOutAnOutage: when Redis refuses the job's start and its
// result for a while, the attempt waits for Redis instead of handing the task
// back to asynq (whose retry bookkeeping cannot survive an outage in v0.26:
// the task would wait a minute or two for the recoverer). The job completes
// on its first attempt and its asynq task was never retried.
func TestRecordWritesWaitOutAnOutage(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{TaskRetention: time.Hour}) // the task stays: its retries are read below
	faulty := redis.NewClient(b.db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	refuse := &refuseRecordOps{left: map[string]int{"start": 3, "complete": 3}}
	faulty.AddHook(refuse.hook())
	jobStore, err := store.NewJobs(faulty, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{ShutdownTimeout: 5 * time.Second}, worker.Deps{Redis: b.db.Client, Store: jobStore, Runner: b.runner, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)

	id := b.submit(t, ask("Does it wait?", "o", jobs.Options{}))
	j := b.waitEnd(t, id)
	if j.Status != jobs.StatusCompleted || j.Attempts != 1 {
		t.Fatalf("job = %s after %d attempts (%+v); want completed on the first", j.Status, j.Attempts, j.Error)
	}
	if n := refuse.remaining(); n != 0 {
		t.Fatalf("%d injected refusals were never hit: the test did not exercise the outage", n)
	}
	if got := types(b.events(t, id)); got != "queued started completed" {
		t.Fatalf("events = %s", got)
	}
	info, err := asynq.NewInspectorFromRedisClient(b.db.Client).GetTaskInfo(jobs.QueueInteractive, id)
	if err != nil {
		t.Fatalf("task info: %v", err)
	}
	if info.Retried != 0 {
		t.Fatalf("asynq retried the task %d times (last error %q); the handler should have waited", info.Retried, info.LastErr)
	}
}

// TestLMCallsAfterARefusedComplete: the second attempt's result write is
// refused (Redis unreachable) and repeated; lm_calls still counts each of
// the two LM calls once.
func TestLMCallsAfterARefusedComplete(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.lm.SetTokensPerSecond(2000)
	faulty := redis.NewClient(b.db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	refuse := &refuseRecordOps{left: map[string]int{"complete": 2}}
	faulty.AddHook(refuse.hook())
	jobStore, err := store.NewJobs(faulty, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{ShutdownTimeout: 5 * time.Second},
		worker.Deps{Redis: b.db.Client, Store: jobStore, Runner: b.runner, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)

	id := b.submit(t, ask("cut off once [[fakelm:truncate,times=1]]", "o", jobs.Options{Stream: true}))
	j := b.waitEnd(t, id)
	if j.Status != jobs.StatusCompleted || j.Attempts != 2 || refuse.remaining() != 0 {
		t.Fatalf("job = %s after %d attempts (%+v), %d refusals unused", j.Status, j.Attempts, j.Error, refuse.remaining())
	}
	if got := j.Result.Provenance.LMCalls; got != 2 || b.lm.Requests() != 2 {
		t.Fatalf("lm_calls = %d after %d LM requests, want 2", got, b.lm.Requests())
	}
}
