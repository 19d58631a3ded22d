package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
)

// waitBatch polls a batch until it ends, for up to twice patience.
func (b *bundle) waitBatch(t *testing.T, id string) *jobs.Batch {
	t.Helper()
	var bt *jobs.Batch
	testwait.Within(t, 2*testwait.Patience, "batch "+id+" to end", func() bool {
		var err error
		if bt, err = b.batches.Get(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		return bt.Status.Terminal()
	})
	return bt
}

// checkBudgetReason checks a refusal names the variable and when it resets.
func checkBudgetReason(t *testing.T, what string, e *jobs.Error) {
	t.Helper()
	if e == nil || e.Code != "token_budget_exceeded" || !strings.Contains(e.Message, "TOKEN_BUDGET_PER_DAY") ||
		!strings.Contains(e.Message, "00:00 UTC") {
		t.Fatalf("%s: error = %+v, want token_budget_exceeded naming TOKEN_BUDGET_PER_DAY and when it resets", what, e)
	}
}

// TestTokenBudgetStopsABatchMidway: with a budget smaller than one batch
// uses, the items that start once it is spent fail with the reason and no LM
// call; the batch counts them and ends; what the owner spent passes the
// budget by no more than the items already running when it ran out.
func TestTokenBudgetStopsABatchMidway(t *testing.T) {
	t.Parallel()
	const budget, slots = 1000, 2
	b := setup(t, store.Config{TokenBudgetPerDay: budget})
	b.startWorker(t, worker.Config{Concurrency: 1, BatchConcurrency: slots})
	ctx := context.Background()
	items := make([]jobs.BatchItem, 30)
	for i := range items {
		items[i] = jobs.BatchItem{CustomID: fmt.Sprint(i), Inputs: jobs.Inputs{"question": fmt.Sprintf("What is topic number %d?", i)}}
	}
	id := createBatch(t, b.batches, "alice", items, true)
	bt := b.waitBatch(t, id)
	if bt.Status != jobs.BatchCompleted || bt.Counts.Completed == 0 || bt.Counts.Failed == 0 ||
		bt.Counts.Completed+bt.Counts.Failed != len(items) {
		t.Fatalf("batch = %s %+v; want it completed with some items done and the rest failed", bt.Status, bt.Counts)
	}
	lines, err := b.batches.Results(ctx, id, 0, len(items))
	if err != nil {
		t.Fatal(err)
	}
	var maxItem int64 // the most tokens one item used
	for i, line := range lines {
		var r jobs.ItemResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("item %d: %q: %v", i, line, err)
		}
		switch r.Status {
		case jobs.StatusCompleted:
			maxItem = max(maxItem, jobs.TotalTokens(r.Usage))
		case jobs.StatusFailed:
			checkBudgetReason(t, fmt.Sprintf("item %d", i), r.Error)
		default:
			t.Fatalf("item %d: %s", i, line)
		}
	}
	if got := b.lm.Requests(); got != int64(bt.Counts.Completed) {
		t.Errorf("LM requests = %d for %d completed items: refused items called the LM", got, bt.Counts.Completed)
	}
	used, err := store.TokensUsed(ctx, b.db.Client, "alice", jobs.UsageDay(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("budget %d: %d items completed, %d refused; %d tokens spent (one item up to %d, %d at once)",
		budget, bt.Counts.Completed, bt.Counts.Failed, used, maxItem, slots)
	// Each item starts only while less than the budget is spent, and at most
	// `slots` run at once: the overshoot is what was in flight.
	if used < budget || used >= budget+slots*maxItem {
		t.Fatalf("spent %d tokens with a budget of %d (items use up to %d, %d at once)", used, budget, maxItem, slots)
	}
}

// TestTokenBudgetRefusesAJobAtItsStart: a job accepted before its owner's
// budget ran out fails when it starts, with the reason and without an LM
// call; another owner's job runs.
func TestTokenBudgetRefusesAJobAtItsStart(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{TokenBudgetPerDay: 500})
	ctx := context.Background()
	// Alice's jobs already used the day's budget.
	if err := b.db.Client.IncrBy(ctx, jobs.UsageKey("alice", jobs.UsageDay(time.Now())), 500).Err(); err != nil {
		t.Fatal(err)
	}
	refused := b.submit(t, ask("Over budget?", "alice", jobs.Options{Stream: true}))
	b.startWorker(t, worker.Config{BatchConcurrency: -1})
	j := b.waitEnd(t, refused)
	if j.Status != jobs.StatusFailed {
		t.Fatalf("job = %s, want failed", j.Status)
	}
	checkBudgetReason(t, "job", j.Error)
	if got := types(b.events(t, refused)); got != "queued failed" {
		t.Fatalf("events = %s, want queued failed", got)
	}
	if n := b.lm.Requests(); n != 0 {
		t.Fatalf("LM requests = %d, want none", n)
	}
	if j := b.waitEnd(t, b.submit(t, ask("Bob's turn", "bob", jobs.Options{}))); j.Status != jobs.StatusCompleted {
		t.Fatalf("another owner's job = %s %+v", j.Status, j.Error)
	}
}

// TestTrackUsageOff: with TRACK_USAGE=false, a job's result and a batch
// item's line carry "usage": null, yet what they spend still counts toward
// their owner's daily budget: the worker counts a run's tokens before its
// usage is encoded (or left out).
func TestTrackUsageOff(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{TokenBudgetPerDay: 1_000_000})
	b.startWorker(t, worker.Config{DisableUsage: true})
	ctx := context.Background()
	day := jobs.UsageDay(time.Now())
	j := b.waitEnd(t, b.submit(t, ask("What does a job spend?", "alice", jobs.Options{})))
	if j.Status != jobs.StatusCompleted || string(j.Result.Usage) != "null" {
		t.Fatalf("job = %s, usage %s; want completed without usage", j.Status, j.Result.Usage)
	}
	if used, err := store.TokensUsed(ctx, b.db.Client, "alice", day); err != nil || used == 0 {
		t.Fatalf("alice's job spent %d tokens (%v), want its run's", used, err)
	}
	batch := createBatch(t, b.batches, "bob", []jobs.BatchItem{{CustomID: "1", Inputs: jobs.Inputs{"question": "What does an item spend?"}}}, false)
	if bt := b.waitBatch(t, batch); bt.Counts.Completed != 1 {
		t.Fatalf("batch = %s %+v", bt.Status, bt.Counts)
	}
	lines, err := b.batches.Results(ctx, batch, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]json.RawMessage
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil || string(line["usage"]) != "null" {
		t.Fatalf("item line = %s (%v), want \"usage\": null", lines[0], err)
	}
	if used, err := store.TokensUsed(ctx, b.db.Client, "bob", day); err != nil || used == 0 {
		t.Fatalf("bob's item spent %d tokens (%v), want its run's", used, err)
	}
}
