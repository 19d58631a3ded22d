package batches_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// TestBatchItemsCountTokensOnce: a completed batch item adds its tokens to
// the owner's usage when its result slot is filled; of two runs of the same
// item (asynq may run a task twice) only the newer one's write is taken,
// and it counts once.
func TestBatchItemsCountTokensOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createBatch(t, bs, 2)
	r := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}, Usage: json.RawMessage(`{"m":{"total_tokens":11}}`)}
	start := func(idx int) *batches.ItemAttempt {
		t.Helper()
		p := jobs.BatchItemPayload{Batch: bt.ID, Index: idx, CustomID: fmt.Sprint("c", idx)}
		att, out, err := bs.StartItem(ctx, p)
		if err != nil || out != batches.ItemStarted {
			t.Fatalf("start item %d: %v %v", idx, out, err)
		}
		return att
	}
	// Two runs of item 0 at once (a lost lease): the older one is refused.
	first, second := start(0), start(0)
	if _, err := first.Complete(ctx, r, jobs.TotalTokens(r.Usage)); !errors.Is(err, batches.ErrStale) {
		t.Fatalf("the older run's complete: %v, want ErrStale", err)
	}
	for _, att := range []*batches.ItemAttempt{second, second, start(1)} {
		if _, err := att.Complete(ctx, r, jobs.TotalTokens(r.Usage)); err != nil {
			t.Fatalf("complete: %v", err)
		}
	}
	if got, err := store.TokensUsed(ctx, b.db.Client, "alice", jobs.UsageDay(time.Now())); err != nil || got != 22 {
		t.Fatalf("TokensUsed = %d, %v; want 22", got, err)
	}
}

// TestBatchItemsCountUsageOnce: a completed batch item adds itself to its
// hour's usage accounting when its result slot is filled, once (a repeat
// finds the slot filled), and its line carries its cost; a failed item
// counts nothing.
func TestBatchItemsCountUsageOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createBatch(t, bs, 3)
	cost := int64(9)
	r := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}},
		Provenance: jobs.Provenance{Program: "qa", ProgramVersion: "v1", Model: "openai/gpt-4o-mini", Path: jobs.PathProvider},
		Usage:      json.RawMessage(`{"openai/gpt-4o-mini":{"prompt_tokens":8,"completion_tokens":3,"total_tokens":11}}`),
		Tokens:     jobs.TokenCount{Input: 8, Output: 3}, Cost: &cost}
	start := func(idx int) *batches.ItemAttempt {
		t.Helper()
		att, out, err := bs.StartItem(ctx, jobs.BatchItemPayload{Batch: bt.ID, Index: idx, CustomID: fmt.Sprint("c", idx)})
		if err != nil || out != batches.ItemStarted {
			t.Fatalf("start item %d: %v %v", idx, out, err)
		}
		return att
	}
	first := start(0)
	for _, att := range []*batches.ItemAttempt{first, first, start(1)} {
		if _, err := att.Complete(ctx, r, 11); err != nil {
			t.Fatalf("complete: %v", err)
		}
	}
	if err := start(2).Fail(ctx, &jobs.Error{Code: "x", Message: "x"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rows, err := store.ReadUsage(ctx, b.db.Client, now.Add(-time.Hour), now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.UsageRow{{Key: "alice", Program: "qa", Version: "v1", Model: "openai/gpt-4o-mini",
		UsageCounts: store.UsageCounts{Jobs: 2, InputTokens: 16, OutputTokens: 6, CostMicroUSD: 18}}}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("ReadUsage (-want +got):\n%s", diff)
	}
	lines, err := bs.Results(ctx, bt.ID, 0, 1)
	if err != nil || len(lines) != 1 || !strings.Contains(lines[0], `"cost_micro_usd":9`) {
		t.Errorf("item 0's line %q, %v: want its cost", lines, err)
	}
}
