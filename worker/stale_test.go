package worker_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// TestSupersededAttemptCannotComplete: a worker's attempt loses the job to
// a newer attempt (as when its lease expired and asynq ran the task again
// elsewhere) just before it writes its result. The result is refused, the
// worker stops as it does for any stale write, and the newer attempt ends
// the job, once.
func TestSupersededAttemptCannotComplete(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	// Just before the worker's first complete reaches Redis, a newer
	// attempt starts, through the test's own client.
	var (
		mu    sync.Mutex
		newer *store.Attempt
	)
	supersede := redistest.RefuseScripts{Match: func(keys []string, args []any) bool {
		if len(keys) == 0 || !strings.HasPrefix(keys[0], "qa:job:") || len(args) == 0 || args[0] != "complete" {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if newer == nil {
			a, out, err := b.store.Start(ctx, strings.TrimPrefix(keys[0], "qa:job:"), "newer", 0)
			if err != nil || out != store.Started || a.Number != 2 {
				t.Errorf("newer start: %+v %v %v", a, out, err)
			}
			newer = a
		}
		return false // let the complete through
	}}
	b.startHookedWorker(t, supersede)

	id := b.submit(t, ask("Who wins?", "o", jobs.Options{}))
	const stopped, completed = "job stopped: cancelled, or a newer attempt runs it", "job completed"
	testwait.Until(t, "the worker settles its superseded attempt", func() bool {
		return strings.Contains(b.logs.String(), stopped) || strings.Contains(b.logs.String(), completed)
	})
	if logs := b.logs.String(); !strings.Contains(logs, stopped) || strings.Contains(logs, completed) {
		t.Fatalf("the superseded attempt was not stopped; log:\n%s", logs)
	}
	j, err := b.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != jobs.StatusRunning || j.Attempts != 2 || j.Result != nil {
		t.Fatalf("job after the stale complete = %s, %d attempts, result %+v; want running attempt 2, no result", j.Status, j.Attempts, j.Result)
	}
	mu.Lock()
	a := newer
	mu.Unlock()
	r := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "the newer"}}, Provenance: jobs.Provenance{LMCalls: 1}}
	if _, err := a.Complete(ctx, r, 0); err != nil {
		t.Fatalf("newer complete: %v", err)
	}
	j = b.waitEnd(t, id)
	if j.Status != jobs.StatusCompleted || j.Result.Answer("answer") != "the newer" {
		t.Fatalf("job = %s %+v", j.Status, j.Result)
	}
	if got := types(b.events(t, id)); got != "queued started started completed" {
		t.Fatalf("events = %s", got)
	}
}
