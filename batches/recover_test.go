package batches_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// TestRecoverItemFencesTheLostRun: a batch item runs on a worker that dies;
// its start indexed it under that worker, a recoverer puts it back under a
// new task, the old task's start is refused, and the lost run's writes are
// refused while the new run completes it once, its tokens counted once.
func TestRecoverItemFencesTheLostRun(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createBatch(t, bs, 2)
	p := itemOf(bt, 0)
	member, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	oldTask := jobs.BatchItemTaskID(bt.ID, 0, 0)
	indexed := func(worker string) bool {
		return b.db.Client.SIsMember(ctx, jobs.WorkerItemsKey(worker), string(member)).Val()
	}

	lost, out, err := bs.StartItemTask(ctx, p, oldTask, "dead")
	if err != nil || out != batches.ItemStarted || !indexed("dead") {
		t.Fatalf("start: %v, %v, indexed %v", out, err, indexed("dead"))
	}
	if n, err := bs.RecoverItems(ctx, "dead"); err != nil || n != 1 {
		t.Fatalf("recover: %d, %v; want 1", n, err)
	}
	if indexed("dead") || b.db.Client.SCard(ctx, jobs.RecoveringItemsKey).Val() != 0 {
		t.Fatal("the item is still in the dead worker's index or the recovering set")
	}
	info, err := asynq.NewInspectorFromRedisClient(b.db.Client).GetTaskInfo(jobs.QueueBatch, oldTask+".1")
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("new task: %+v, %v; want it pending", info, err)
	}
	r := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}, Usage: json.RawMessage(`{"m":{"total_tokens":11}}`)}
	if _, err := lost.Complete(ctx, r, 11); !errors.Is(err, batches.ErrStale) {
		t.Fatalf("the lost run's complete before the new start: %v, want ErrStale", err)
	}
	if _, out, err := bs.StartItemTask(ctx, p, oldTask, "late"); err != nil || out != batches.ItemSkipped {
		t.Fatalf("old task's start: %v, %v; want it skipped", out, err)
	}
	again, out, err := bs.StartItemTask(ctx, p, oldTask+".1", "live")
	if err != nil || out != batches.ItemStarted || again.Number != 2 || !indexed("live") {
		t.Fatalf("new task's start: %+v, %v, %v", again, out, err)
	}
	for name, write := range map[string]func() error{
		"complete": func() error { _, err := lost.Complete(ctx, r, 11); return err },
		"fail":     func() error { return lost.Fail(ctx, &jobs.Error{Code: "x", Message: "x"}) },
		"retry":    func() error { return lost.Retry(ctx, &jobs.Error{Code: "x", Message: "x"}, 0) },
		"defer":    func() error { return lost.Defer(ctx, &jobs.Error{Code: "x", Message: "x"}, 0) },
	} {
		if err := write(); !errors.Is(err, batches.ErrStale) {
			t.Errorf("the lost run's %s: %v, want ErrStale", name, err)
		}
	}
	if _, err := again.Complete(ctx, r, 11); err != nil {
		t.Fatal(err)
	}
	if indexed("live") {
		t.Error("still indexed after its run ended")
	}
	got, err := bs.Get(ctx, bt.ID)
	if err != nil || got.Counts.Completed != 1 || got.Counts.Failed != 0 {
		t.Fatalf("batch = %+v, %v; want one item completed", got, err)
	}
	if used, err := store.TokensUsed(ctx, b.db.Client, "alice", jobs.UsageDay(time.Now())); err != nil || used != 11 {
		t.Fatalf("tokens used = %d, %v; want 11", used, err)
	}
	// A recovery after the item ended finds nothing to put back.
	b.db.Client.SAdd(ctx, jobs.WorkerItemsKey("live"), string(member))
	if n, err := bs.RecoverItems(ctx, "live"); err != nil || n != 0 || indexed("live") {
		t.Fatalf("recover a finished item: %d, %v, indexed %v", n, err, indexed("live"))
	}
}

// TestRedriveItemsEnqueuesWhatARecovererLeft: an item put back whose task
// was not enqueued (the recoverer died in between) is enqueued by the next.
func TestRedriveItemsEnqueuesWhatARecovererLeft(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	insp := asynq.NewInspectorFromRedisClient(b.db.Client)
	bt := createBatch(t, bs, 1)
	p := itemOf(bt, 0)
	task := jobs.BatchItemTaskID(bt.ID, 0, 0) + ".1"
	if _, _, err := bs.StartItemTask(ctx, p, jobs.BatchItemTaskID(bt.ID, 0, 0), "dead"); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.RecoverItems(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	if err := insp.DeleteTask(jobs.QueueBatch, task); err != nil {
		t.Fatal(err)
	}
	member, _ := json.Marshal(p)
	b.db.Client.SAdd(ctx, jobs.RecoveringItemsKey, string(member))
	if n, err := bs.RedriveItems(ctx); err != nil || n != 1 {
		t.Fatalf("redrive: %d, %v; want 1", n, err)
	}
	if _, err := insp.GetTaskInfo(jobs.QueueBatch, task); err != nil {
		t.Fatalf("task not enqueued again: %v", err)
	}
	if n := b.db.Client.SCard(ctx, jobs.RecoveringItemsKey).Val(); n != 0 {
		t.Fatalf("recovering set holds %d", n)
	}
}
