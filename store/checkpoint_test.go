package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// checkpoint is a finished stage's checkpoint with one output.
func checkpoint(stage, output string, value any, calls int) *jobs.Checkpoint {
	return &jobs.Checkpoint{
		StageUsage: jobs.StageUsage{Stage: stage, Usage: json.RawMessage(`{"m":{"total_tokens":7}}`), LMCalls: calls},
		Outputs:    jobs.Outputs{{Name: output, Value: value}},
	}
}

// recordLMCalls is the LM calls job id's record counts (no field until an
// attempt or checkpoint adds some, as store/record.lua writes it).
func recordLMCalls(t *testing.T, b *bundle, id string) int {
	t.Helper()
	n, err := b.db.Client.HGet(context.Background(), jobs.JobKey(id), "lm_calls").Int()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	if err != nil {
		t.Fatalf("read lm_calls: %v", err)
	}
	return n
}

// TestCheckpointsResumeAndCount: a multi-stage job's finished stage is
// written with its stage_completed event and handed back by the next
// attempt's start, in stage order; a repeat after a lost reply writes
// nothing twice; the stage's LM calls count once, whether the attempt then
// retries or completes.
func TestCheckpointsResumeAndCount(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	j := submit(t, b, ask("", "q"))
	a := start(t, b, j.ID)
	if len(a.Checkpoints) != 0 {
		t.Fatalf("first start: checkpoints %+v", a.Checkpoints)
	}
	first := checkpoint("extract.predict", "claims", []any{"a", "b"}, 2)
	if err := a.Checkpoint(ctx, 0, first); err != nil {
		t.Fatal(err)
	}
	if err := a.Checkpoint(ctx, 0, first); err != nil { // a repeat after a lost reply
		t.Fatalf("repeat: %v", err)
	}
	a.LMCalls = 3 // the stage's 2 and stage 2's call, which 429ed
	if err := a.Retry(ctx, &jobs.Error{Code: "lm_error", Message: "429"}, 0); err != nil {
		t.Fatal(err)
	}
	a = start(t, b, j.ID)
	if diff := cmp.Diff([]jobs.Checkpoint{*first}, a.Checkpoints); diff != "" {
		t.Fatalf("checkpoints handed back (-want +got):\n%s", diff)
	}
	second := checkpoint("verify", "supported", true, 1)
	if err := a.Checkpoint(ctx, 1, second); err != nil {
		t.Fatal(err)
	}
	r := &jobs.Result{Outputs: jobs.Outputs{{Name: "supported", Value: true}}, Provenance: jobs.Provenance{LMCalls: 1}}
	if _, err := a.Complete(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	got := get(t, b, j.ID)
	if p := got.Result.Provenance; p.LMCalls != 4 || p.Attempts != 2 {
		t.Fatalf("provenance = %+v, want 4 LM calls (3 + 1) over 2 attempts", p)
	}
	if n := recordLMCalls(t, b, j.ID); n != 4 {
		t.Fatalf("record lm_calls = %d, want 4", n)
	}
	evs := events(t, b, j.ID)
	checkEventTypes(t, evs, jobs.EventQueued, jobs.EventStarted, jobs.EventStageCompleted, jobs.EventRetrying,
		jobs.EventStarted, jobs.EventStageCompleted, jobs.EventCompleted)
	if got, want := string(evs[2].Data), `{"stage":"extract.predict","outputs":{"claims":["a","b"]}}`; got != want {
		t.Fatalf("stage_completed data = %s, want %s", got, want)
	}
}

// TestStaleAttemptCannotCheckpoint: a superseded attempt's stage write is
// refused like its other writes, and leaves no checkpoint, event or LM
// calls for the newer attempt to resume from.
func TestStaleAttemptCannotCheckpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	j := submit(t, b, ask("", "q"))
	first := startOn(t, b, j.ID, "w1")
	second := startOn(t, b, j.ID, "w2") // the first lost its lease
	if err := first.Checkpoint(ctx, 0, checkpoint("extract.predict", "claims", []any{"stale"}, 1)); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale checkpoint: %v, want ErrStale", err)
	}
	// The second is put back; its next start finds no checkpoint.
	if err := second.Defer(ctx, &jobs.Error{Code: "rate_limited", Message: "wait"}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := first.Checkpoint(ctx, 0, checkpoint("extract.predict", "claims", []any{"stale"}, 1)); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale checkpoint while the job waits to retry: %v, want ErrStale", err)
	}
	third := startOn(t, b, j.ID, "w3")
	if len(third.Checkpoints) != 0 {
		t.Fatalf("checkpoints after stale writes: %+v", third.Checkpoints)
	}
	if n := recordLMCalls(t, b, j.ID); n != 0 {
		t.Fatalf("record lm_calls = %d, want 0", n)
	}
	evs := events(t, b, j.ID)
	for _, e := range evs {
		if e.Type == jobs.EventStageCompleted {
			t.Fatalf("a stale attempt's stage_completed was sent: %s", e.Data)
		}
	}
	// The current attempt's write goes through; after the job ends, a
	// checkpoint is refused as terminal.
	if err := third.Checkpoint(ctx, 0, checkpoint("extract.predict", "claims", []any{"fresh"}, 1)); err != nil {
		t.Fatal(err)
	}
	if err := third.Fail(ctx, &jobs.Error{Code: "parse_error", Message: "stage verify: bad"}); err != nil {
		t.Fatal(err)
	}
	if err := third.Checkpoint(ctx, 1, checkpoint("verify", "supported", true, 1)); !errors.Is(err, store.ErrTerminal) {
		t.Fatalf("checkpoint after the end: %v, want ErrTerminal", err)
	}
}
