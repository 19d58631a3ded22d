package batches_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

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
