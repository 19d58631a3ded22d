package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/store"
)

func TestStatsAddUp(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx := context.Background()
	first := time.UnixMilli(1_700_000_000_000).UTC()
	if err := store.AddStats(ctx, db.Client, store.Stats{Requests: 2, Errors: 1, LatencySeconds: 0.5, LatencyCount: 1, Tokens: 30}, first); err != nil {
		t.Fatal(err)
	}
	// A second replica adds its own counts; the start time stays the first.
	if err := store.AddStats(ctx, db.Client, store.Stats{Requests: 1, LatencySeconds: 0.25, LatencyCount: 1, Tokens: 15}, first.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := store.ReadStats(ctx, db.Client)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Stats{Requests: 3, Errors: 1, LatencySeconds: 0.75, LatencyCount: 2, Tokens: 45, StartedAt: first}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("stats (-want +got):\n%s", diff)
	}
	empty, err := store.ReadStats(ctx, redistest.New(t).Client)
	if err != nil || !empty.Zero() || !empty.StartedAt.IsZero() {
		t.Fatalf("no stats yet: %+v %v", empty, err)
	}
}
