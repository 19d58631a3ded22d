package batches_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// createProviderBatch stores an n-item provider-mode batch of alice.
func createProviderBatch(t *testing.T, bs *batches.Store, n int) *jobs.Batch {
	t.Helper()
	ctx := context.Background()
	u, err := bs.BeginUpload(ctx, batches.UploadRequest{Spec: batchOf("alice"), Mode: jobs.BatchModeProvider, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := u.Add(ctx, jobs.BatchItem{CustomID: "c" + string(rune('a'+i)), Inputs: ask("q")}); err != nil {
			t.Fatal(err)
		}
	}
	created, err := u.Commit(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return created.Batch
}

// expandedProviderBatch is createProviderBatch's batch, expanded: its one
// offload task enqueued.
func expandedProviderBatch(t *testing.T, bs *batches.Store, n int) *jobs.Batch {
	t.Helper()
	bt := createProviderBatch(t, bs, n)
	if _, err := bs.Expand(context.Background(), bt.ID, 0); err != nil {
		t.Fatal(err)
	}
	return bt
}

// queueTasks lists the pending tasks of queue (none when it does not exist).
func queueTasks(t *testing.T, b *bundle, queue string) []*asynq.TaskInfo {
	t.Helper()
	tasks, err := asynq.NewInspectorFromRedisClient(b.db.Client).ListPendingTasks(queue)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	return tasks
}

// TestBatchModeStoredAndRead: the mode is the record's; a live batch's
// record (and one written before modes, without the field) reads live.
func TestBatchModeStoredAndRead(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	p := createProviderBatch(t, bs, 2)
	if p.Mode != jobs.BatchModeProvider || p.Provider != nil || p.Cost != nil {
		t.Fatalf("provider batch = mode %q provider %v cost %v", p.Mode, p.Provider, p.Cost)
	}
	live := createBatch(t, bs, 2)
	if live.Mode != jobs.BatchModeLive {
		t.Fatalf("live batch mode = %q", live.Mode)
	}
	if err := b.db.Client.HDel(ctx, jobs.BatchKey(live.ID), "mode").Err(); err != nil {
		t.Fatal(err)
	}
	if old, err := bs.Get(ctx, live.ID); err != nil || old.Mode != jobs.BatchModeLive {
		t.Fatalf("record without a mode = %+v, %v", old, err)
	}
	if _, err := bs.BeginUpload(ctx, batches.UploadRequest{Spec: batchOf("alice"), Mode: "fast", TTL: time.Hour}); err == nil {
		t.Fatal("an unknown mode was accepted")
	}
}

// TestProviderBatchExpandsIntoOneOffloadTask: a provider batch's expansion
// enqueues one offload task on the provider queue, no item task, and
// records every item expanded; running it again is harmless.
func TestProviderBatchExpandsIntoOneOffloadTask(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{StoreChunk: 2})
	ctx := context.Background()
	bt := createProviderBatch(t, bs, 5)
	for run := range 2 {
		done, err := bs.Expand(ctx, bt.ID, 0)
		if err != nil || !done {
			t.Fatalf("expand run %d = %v, %v", run, done, err)
		}
	}
	if tasks := queueTasks(t, b, jobs.QueueBatch); len(tasks) != 0 {
		t.Fatalf("%d item tasks enqueued for a provider batch", len(tasks))
	}
	tasks := queueTasks(t, b, jobs.QueueBatchProvider)
	if len(tasks) != 1 {
		t.Fatalf("%d offload tasks, want 1", len(tasks))
	}
	task := tasks[0]
	var p jobs.OffloadPayload
	if err := json.Unmarshal(task.Payload, &p); err != nil || p.BatchID != bt.ID {
		t.Fatalf("payload %s: %v", task.Payload, err)
	}
	if task.ID != "offload-"+bt.ID || task.Type != jobs.TaskTypeBatchOffload || task.MaxRetry < 1000 || task.Timeout < time.Hour {
		t.Fatalf("offload task = id %s type %s max retry %d timeout %v", task.ID, task.Type, task.MaxRetry, task.Timeout)
	}
	got, err := bs.Get(ctx, bt.ID)
	if err != nil || got.Expanded != 5 || got.Status != jobs.BatchInProgress {
		t.Fatalf("after expansion: %+v, %v", got, err)
	}
}

// TestProviderBatchCancelLeavesItemsToTheRunner: cancelling an expanded
// provider batch counts nothing cancelled and frees no input behind the
// offload runner's back: it still records what the provider finished
// (a start without a worker), then counts the rest cancelled.
func TestProviderBatchCancelLeavesItemsToTheRunner(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{ProgressInterval: time.Nanosecond})
	ctx := context.Background()
	bt := expandedProviderBatch(t, bs, 3)
	cancelled, err := bs.Cancel(ctx, bt.ID)
	if err != nil || cancelled.Status != jobs.BatchCancelling || cancelled.Counts.Cancelled != 0 {
		t.Fatalf("cancel = %+v, %v", cancelled, err)
	}
	if err := bs.FreeInputs(ctx, cancelled); err != nil {
		t.Fatal(err)
	}
	if n, err := b.db.Client.HLen(ctx, jobs.BatchItemsKey(bt.ID)).Result(); err != nil || n != 3 {
		t.Fatalf("inputs left after the cancel = %d, %v; want all 3", n, err)
	}
	// The runner records item 0, which the provider finished.
	att, out, err := bs.StartItemTask(ctx, jobs.BatchItemPayload{Batch: bt.ID, Index: 0, CustomID: "ca"}, "offload-"+bt.ID, "")
	if err != nil || out != batches.ItemStarted {
		t.Fatalf("runner's start of a finished item = %v, %v", out, err)
	}
	if _, err := att.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}}, 0); err != nil {
		t.Fatal(err)
	}
	// And counts the others cancelled.
	for i, id := range []string{"cb", "cc"} {
		att, out, err := bs.StartItemTask(ctx, jobs.BatchItemPayload{Batch: bt.ID, Index: i + 1, CustomID: id}, "offload-"+bt.ID, "")
		if err != nil || out != batches.ItemStarted {
			t.Fatalf("runner's start of item %d = %v, %v", i+1, out, err)
		}
		if err := att.Cancelled(ctx); err != nil {
			t.Fatal(err)
		}
	}
	end, err := bs.Get(ctx, bt.ID)
	if err != nil || end.Status != jobs.BatchCancelled || end.Counts != (jobs.BatchCounts{Total: 3, Completed: 1, Cancelled: 2}) {
		t.Fatalf("end = %+v, %v", end, err)
	}
	// A live item task of the batch (a fallback) is counted cancelled at its
	// start, as a live batch's are: shown by a second batch.
	other := createProviderBatch(t, bs, 2)
	if _, err := bs.Expand(ctx, other.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Cancel(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, out, err := bs.StartItemTask(ctx, jobs.BatchItemPayload{Batch: other.ID, Index: 0, CustomID: "ca"}, other.ID+"-0", "w1"); err != nil || out != batches.ItemSkipped {
		t.Fatalf("a worker's start in a cancelling provider batch = %v, %v; want skipped (counted cancelled)", out, err)
	}
	if got, _ := bs.Get(ctx, other.ID); got.Counts.Cancelled != 1 {
		t.Fatalf("counts after a worker's start = %+v", got.Counts)
	}
}

// TestProviderBatchCancelledBeforeExpansion: cancelled before its
// expansion, a provider batch enqueues no offload task and ends cancelled.
func TestProviderBatchCancelledBeforeExpansion(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createProviderBatch(t, bs, 3)
	if _, err := bs.Cancel(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	if done, err := bs.Expand(ctx, bt.ID, 0); err != nil || !done {
		t.Fatalf("expand = %v, %v", done, err)
	}
	if tasks := queueTasks(t, b, jobs.QueueBatchProvider); len(tasks) != 0 {
		t.Fatalf("%d offload tasks for a batch cancelled before its expansion", len(tasks))
	}
	end, err := bs.Get(ctx, bt.ID)
	if err != nil || end.Status != jobs.BatchCancelled || end.Counts.Cancelled != 3 {
		t.Fatalf("end = %+v, %v", end, err)
	}
	if n, _ := b.db.Client.HLen(ctx, jobs.BatchItemsKey(bt.ID)).Result(); n != 0 {
		t.Fatalf("%d inputs kept", n)
	}
}

func sampleProvider() jobs.ProviderProgress {
	return jobs.ProviderProgress{Name: "openai", Phase: jobs.ProviderInProgress, Round: 1,
		Batches: []jobs.ProviderBatch{{Chunk: 0, ID: "batch_abc", InputFileID: "file-1", Status: "in_progress", Requests: 3}},
		Counts:  jobs.ProviderCounts{Total: 3, Completed: 1, Cached: 0}}
}

// TestSetProviderRecordsAndAnnounces: SetProvider writes the batch's
// provider object and appends a progress event carrying it; later
// progress events carry it too.
func TestSetProviderRecordsAndAnnounces(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{ProgressInterval: time.Nanosecond})
	ctx := context.Background()
	bt := createProviderBatch(t, bs, 2)
	p := sampleProvider()
	if err := bs.SetProvider(ctx, bt.ID, p); err != nil {
		t.Fatal(err)
	}
	got, err := bs.Get(ctx, bt.ID)
	if err != nil || got.Provider == nil || !reflect.DeepEqual(*got.Provider, p) {
		t.Fatalf("provider read back = %+v, %v", got.Provider, err)
	}
	last := func() (jobs.Event, jobs.BatchProgress) {
		t.Helper()
		evs, err := bs.Events(ctx, bt.ID, "0")
		if err != nil || len(evs) == 0 {
			t.Fatalf("events: %v", err)
		}
		ev := evs[len(evs)-1]
		var d jobs.BatchProgress
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatalf("event data %s: %v", ev.Data, err)
		}
		return ev, d
	}
	ev, d := last()
	if ev.Type != jobs.EventProgress || d.Status != jobs.BatchInProgress || d.Provider == nil || !reflect.DeepEqual(*d.Provider, p) {
		t.Fatalf("event after SetProvider = %s %s", ev.Type, ev.Data)
	}
	// An item's end: its progress event carries the provider object.
	att, _, err := bs.StartItemTask(ctx, jobs.BatchItemPayload{Batch: bt.ID, Index: 0, CustomID: "ca"}, "offload-"+bt.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := att.Complete(ctx, &jobs.Result{}, 0); err != nil {
		t.Fatal(err)
	}
	ev, d = last()
	if d.RequestCounts.Completed != 1 || d.Provider == nil || d.Provider.Phase != jobs.ProviderInProgress {
		t.Fatalf("item's progress event = %s %s", ev.Type, ev.Data)
	}
	// A live batch's events have no provider key.
	live := createBatch(t, bs, 1)
	evs, err := bs.Events(ctx, live.ID, "0")
	if err != nil || len(evs) == 0 || strings.Contains(string(evs[0].Data), "provider") {
		t.Fatalf("live batch's event = %v, %v", evs, err)
	}
	if err := bs.SetProvider(ctx, "batch_00000000000000000000000000000000", p); !errors.Is(err, batches.ErrNotFound) {
		t.Fatalf("SetProvider of a missing batch = %v", err)
	}
}

// TestSetProviderAfterTheEnd: the runner's last word on a batch that has
// just ended is kept, without an event after the terminal one.
func TestSetProviderAfterTheEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createProviderBatch(t, bs, 1)
	att, _, err := bs.StartItemTask(ctx, jobs.BatchItemPayload{Batch: bt.ID, Index: 0, CustomID: "ca"}, "offload-"+bt.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := att.Complete(ctx, &jobs.Result{}, 0); err != nil {
		t.Fatal(err)
	}
	before, _ := bs.Events(ctx, bt.ID, "0")
	p := sampleProvider()
	p.Phase = jobs.ProviderDone
	if err := bs.SetProvider(ctx, bt.ID, p); err != nil {
		t.Fatal(err)
	}
	after, _ := bs.Events(ctx, bt.ID, "0")
	got, err := bs.Get(ctx, bt.ID)
	if err != nil || got.Provider == nil || got.Provider.Phase != jobs.ProviderDone || len(after) != len(before) {
		t.Fatalf("after the end: provider %+v (%v), events %d then %d", got.Provider, err, len(before), len(after))
	}
}

// TestSetCost: the cost is the record's, read back as written, and may be
// written after the batch ended (the last chunk's cost comes last).
func TestSetCost(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createProviderBatch(t, bs, 1)
	micros, live := int64(1250), int64(2500)
	c := jobs.BatchCost{Model: "openai/gpt-4o-mini", Micros: &micros, LiveMicros: &live, ProviderCalls: 1}
	if err := bs.SetCost(ctx, bt.ID, c); err != nil {
		t.Fatal(err)
	}
	got, err := bs.Get(ctx, bt.ID)
	if err != nil || got.Cost == nil || !reflect.DeepEqual(*got.Cost, c) {
		t.Fatalf("cost read back = %+v, %v", got.Cost, err)
	}
	if _, err := bs.Cancel(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	unknown := jobs.BatchCost{Model: "mystery", ProviderCalls: 1}
	if err := bs.SetCost(ctx, bt.ID, unknown); err != nil {
		t.Fatal(err)
	}
	if got, _ := bs.Get(ctx, bt.ID); got.Cost == nil || got.Cost.Micros != nil || got.Cost.Model != "mystery" {
		t.Fatalf("unknown model's cost = %+v", got.Cost)
	}
	if err := bs.SetCost(ctx, "batch_00000000000000000000000000000000", c); !errors.Is(err, batches.ErrNotFound) {
		t.Fatalf("SetCost of a missing batch = %v", err)
	}
}

// TestProviderRoundOutlivesTheWindow: the completion window does not cut a
// provider round (each stage may take the provider's 24 hours): while the
// runner holds the items and its provider work is not done, the window
// check moves the window on (the keys' life with it) and the runner's
// starts go on; once its provider work is done, the window applies again.
func TestProviderRoundOutlivesTheWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{CompletionWindow: time.Hour})
	ctx := context.Background()
	bt := expandedProviderBatch(t, bs, 3)
	// The runner has begun: its provider batch runs.
	if err := bs.SetProvider(ctx, bt.ID, jobs.ProviderProgress{Name: "openai", Phase: jobs.ProviderInProgress, Round: 1}); err != nil {
		t.Fatal(err)
	}
	past := bt.ExpiresAt.Add(time.Minute)
	batches.SetClock(bs, func() time.Time { return past })
	// The runner records an item past the window.
	att, out, err := bs.StartItemTask(ctx, jobs.BatchItemPayload{Batch: bt.ID, Index: 0, CustomID: "ca"}, "offload-"+bt.ID, "")
	if err != nil || out != batches.ItemStarted {
		t.Fatalf("runner's start past the window = %v, %v", out, err)
	}
	if _, err := att.Complete(ctx, &jobs.Result{}, 0); err != nil {
		t.Fatal(err)
	}
	if err := bs.CheckWindow(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	moved, err := bs.Get(ctx, bt.ID)
	if err != nil || moved.Status != jobs.BatchInProgress || !moved.ExpiresAt.Equal(past.Add(time.Hour).Truncate(time.Millisecond)) {
		t.Fatalf("after the window check: %+v, %v; want in progress until %v", moved, err, past.Add(time.Hour))
	}
	if ttl := b.db.Client.PTTL(ctx, jobs.BatchItemsKey(bt.ID)).Val(); ttl < time.Hour+bs.Config().ResultTTL-time.Minute {
		t.Fatalf("items' ttl after the window moved = %v", ttl)
	}
	checks := 0
	for _, task := range queueTasks(t, b, jobs.QueueBatchControl) {
		if task.ID == "check-"+bt.ID+"-"+strconv.FormatInt(moved.ExpiresAt.UnixMilli(), 10) {
			checks++
		}
	}
	scheduled, err := asynq.NewInspectorFromRedisClient(b.db.Client).ListScheduledTasks(jobs.QueueBatchControl)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range scheduled {
		if task.ID == "check-"+bt.ID+"-"+strconv.FormatInt(moved.ExpiresAt.UnixMilli(), 10) {
			checks++
		}
	}
	if checks != 1 {
		t.Fatalf("%d checks at the moved window's end, want 1", checks)
	}
	// The provider work is done: the next window's end expires the batch.
	p := sampleProvider()
	p.Phase = jobs.ProviderDone
	if err := bs.SetProvider(ctx, bt.ID, p); err != nil {
		t.Fatal(err)
	}
	later := moved.ExpiresAt.Add(time.Minute)
	batches.SetClock(bs, func() time.Time { return later })
	if expired, err := bs.Expire(ctx, bt.ID); err != nil || !expired {
		t.Fatalf("expire once the provider work is done = %v, %v", expired, err)
	}
	if end, _ := bs.Get(ctx, bt.ID); end.Status != jobs.BatchExpired || end.Counts.Completed != 1 {
		t.Fatalf("end = %+v", end)
	}
}

// TestProviderBatchRetryRunsLive: a retry round of a provider-mode batch
// runs its items as live item tasks, marked so (Fallback), so their
// results say they took the live path, not "".
func TestProviderBatchRetryRunsLive(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := expandedProviderBatch(t, bs, 2)
	for i, id := range []string{"ca", "cb"} {
		att, out, err := bs.StartItemTask(ctx, jobs.BatchItemPayload{Batch: bt.ID, Index: i, CustomID: id}, "offload-"+bt.ID, "")
		if err != nil || out != batches.ItemStarted {
			t.Fatalf("runner's start of item %d = %v, %v", i, out, err)
		}
		if i == 0 {
			err = att.Fail(ctx, &jobs.Error{Code: "lm_error", Message: "boom"})
		} else {
			_, err = att.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}}, 0)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := bs.Retry(ctx, bt.ID); err != nil || n != 1 {
		t.Fatalf("retry = %d, %v", n, err)
	}
	if err := bs.Requeue(ctx, bt.ID, 1); err != nil {
		t.Fatal(err)
	}
	tasks := queueTasks(t, b, jobs.QueueBatch)
	if len(tasks) != 1 {
		t.Fatalf("%d item tasks after the retry, want 1", len(tasks))
	}
	p, err := jobs.ParseBatchItemPayload(tasks[0].Payload)
	if err != nil || p.Index != 0 || !p.Fallback {
		t.Fatalf("retried item's payload = %+v, %v; want item 0 marked live (Fallback)", p, err)
	}
}

// TestProviderBatchNoRunnerTookExpires: a provider batch whose offload
// task no worker took within the completion window (no worker has the
// provider's batch API, or none serves its queue) ends expired then, as a
// live batch would: the window moves on only for provider work under way.
func TestProviderBatchNoRunnerTookExpires(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{CompletionWindow: time.Hour})
	ctx := context.Background()
	bt := expandedProviderBatch(t, bs, 3)
	past := bt.ExpiresAt.Add(time.Minute)
	batches.SetClock(bs, func() time.Time { return past })
	if err := bs.CheckWindow(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	end, err := bs.Get(ctx, bt.ID)
	if err != nil || end.Status != jobs.BatchExpired {
		t.Fatalf("after the window check: %+v, %v; want expired", end, err)
	}
}
