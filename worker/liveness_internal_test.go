package worker

import (
	"context"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
)

// TestRecovererWaitsForItsOwnHeartbeats: a recoverer declares a silent
// worker dead only once its own renewals have been succeeding for twice the
// TTL; a failed renewal (Redis away: every worker's key lapses) or a gap
// (this process was stalled) starts that count again.
func TestRecovererWaitsForItsOwnHeartbeats(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx := context.Background()
	jobStore, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const ttl = time.Second
	workers := store.NewWorkers(jobStore, ttl)
	sub, err := store.NewClient(db.Client, jobStore).Submit(ctx, store.SubmitRequest{Spec: jobs.Spec{ClientSpec: jobs.QuestionSpec("q")}})
	if err != nil {
		t.Fatal(err)
	}
	id := sub.Job.ID
	if _, out, err := jobStore.Start(ctx, id, "silent", 0); err != nil || out != store.Started {
		t.Fatalf("start: %v, %v", out, err)
	}
	if err := workers.Renew(ctx, "silent"); err != nil {
		t.Fatal(err)
	}
	db.Client.Del(ctx, jobs.WorkerAliveKey("silent")) // as if it expired
	status := func() string { return db.Client.HGet(ctx, jobs.JobKey(id), "status").Val() }

	l := newLiveness(workers, nil, "me", ttl, zerolog.Nop(), nil)
	if err := l.renew(ctx); err != nil {
		t.Fatal(err)
	}
	l.recover(ctx)
	if status() != "running" {
		t.Fatalf("recovered with a single renewal behind it: %s", status())
	}
	// Renewals for a while, then one fails: the count starts again.
	for range 3 {
		if err := l.renew(ctx); err != nil {
			t.Fatal(err)
		}
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.renew(gone); err == nil {
		t.Fatal("renew with a cancelled context succeeded")
	}
	l.recover(ctx)
	if status() != "running" {
		t.Fatalf("recovered right after a failed renewal: %s", status())
	}
	first := time.Now()
	testwait.Within(t, 30*time.Second, "the recoverer to put the job back", func() bool {
		if err := l.renew(ctx); err != nil {
			t.Fatal(err)
		}
		l.recover(ctx)
		return status() == string(jobs.StatusRetrying)
	})
	if waited := time.Since(first); waited < 2*ttl {
		t.Fatalf("recovered %v after renewals resumed, before 2×TTL", waited)
	}
	// A gap longer than the TTL between renewals (this process stalled)
	// also starts the count again.
	l.lastRenewal.Store(time.Now().Add(-2 * ttl).UnixNano())
	if err := l.renew(ctx); err != nil {
		t.Fatal(err)
	}
	if l.healthy(time.Now()) {
		t.Fatal("healthy right after a stall")
	}
}
