package worker_test

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// refuseRecordOps makes the first n runs of each named record-script op
// fail as a Redis that has gone away would (connection refused), before the
// script reaches the server; everything else goes to the real server.
type refuseRecordOps struct {
	mu   sync.Mutex
	left map[string]int
}

func (h *refuseRecordOps) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *refuseRecordOps) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *refuseRecordOps) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		// EVALSHA sha numkeys job events extra extra op ...
		args := cmd.Args()
		if name := strings.ToLower(cmd.Name()); (name == "evalsha" || name == "eval") && len(args) > 7 {
			key, _ := args[3].(string)
			op, _ := args[7].(string)
			if strings.HasPrefix(key, "qa:job:") && h.take(op) {
				err := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmd)
	}
}

func (h *refuseRecordOps) take(op string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.left[op] > 0 {
		h.left[op]--
		return true
	}
	return false
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
	b := setup(t, jobs.Config{})
	faulty := redis.NewClient(b.db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	refuse := &refuseRecordOps{left: map[string]int{"start": 3, "complete": 3}}
	faulty.AddHook(refuse)
	store, err := jobs.NewStore(faulty, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{ShutdownTimeout: 5 * time.Second}, worker.Deps{Redis: b.db.Client, Store: store, Runner: b.runner, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)

	id := b.submit(t, jobs.SubmitRequest{Question: "Does it wait?", Owner: "o"})
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
