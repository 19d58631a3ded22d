package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// TestStartSaysWhenTheAttemptBecameDue checks Attempt.Due, where a worker's
// queued span starts: the job's creation for the first attempt, the end of
// the put-back's delay for a retry or a deferral, the put-back itself for a
// job put back at once.
func TestStartSaysWhenTheAttemptBecameDue(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{MaxAttempts: 5})
	ctx := context.Background()
	j := submit(t, b, ask("o", "q"))
	a := start(t, b, j.ID)
	if !a.Due.Equal(j.CreatedAt) {
		t.Fatalf("first attempt due %v, want the job's creation %v", a.Due, j.CreatedAt)
	}
	for _, c := range []struct {
		name    string
		putBack func(*store.Attempt, time.Duration) error
		delay   time.Duration
	}{
		{"retry", func(a *store.Attempt, d time.Duration) error {
			return a.Retry(ctx, &jobs.Error{Code: "lm_error", Status: 429}, d)
		}, 90 * time.Second},
		{"defer", func(a *store.Attempt, d time.Duration) error {
			return a.Defer(ctx, &jobs.Error{Code: "rate_limited"}, d)
		}, time.Hour},
		{"put back at once", func(a *store.Attempt, d time.Duration) error {
			return a.Defer(ctx, &jobs.Error{Code: "worker_stopped"}, d)
		}, 0},
	} {
		before := time.Now().Truncate(time.Millisecond)
		if err := c.putBack(a, c.delay); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		after := time.Now()
		a = start(t, b, j.ID)
		if a.Due.Before(before.Add(c.delay)) || a.Due.After(after.Add(c.delay)) {
			t.Errorf("%s by %v: next attempt due %v, want between %v and %v", c.name, c.delay, a.Due, before.Add(c.delay), after.Add(c.delay))
		}
	}
}
