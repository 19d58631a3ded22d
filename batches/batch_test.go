package batches_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

func newBatches(t *testing.T, b *bundle, cfg batches.Config) *batches.Store {
	t.Helper()
	bs, err := batches.NewStore(b.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// upload stores items as owner's batch, as the API does: BeginUpload, Add,
// Commit.
func upload(ctx context.Context, bs *batches.Store, owner string, items []jobs.BatchItem) (*batches.Created, error) {
	u, err := bs.BeginUpload(ctx, batches.UploadRequest{Spec: batchOf(owner), TTL: time.Hour})
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if err := u.Add(ctx, it); err != nil {
			u.Abort(ctx)
			return nil, err
		}
	}
	return u.Commit(ctx, "", "")
}

// createBatch stores an n-item batch of alice.
func createBatch(t *testing.T, bs *batches.Store, n int) *jobs.Batch {
	t.Helper()
	return createBatchOf(t, bs, "alice", n)
}

func pendingItems(t *testing.T, b *bundle) int {
	t.Helper()
	info, err := asynq.NewInspectorFromRedisClient(b.db.Client).GetQueueInfo(jobs.QueueBatch)
	if err != nil {
		t.Fatal(err)
	}
	return info.Pending
}

// A crash mid-expansion (simulated: stop after some items, and lose the
// cursor's last write) loses nothing and duplicates nothing on the re-run.
func TestBatchExpandResumesWithoutLossOrDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{StoreChunk: 100})
	ctx := context.Background()
	bt := createBatch(t, bs, 250)
	if bt.Status != jobs.BatchInProgress || bt.Counts.Total != 250 {
		t.Fatalf("created = %+v", bt)
	}
	done, err := bs.Expand(ctx, bt.ID, 130)
	if err != nil || done {
		t.Fatalf("partial expand = %v %v", done, err)
	}
	if n := pendingItems(t, b); n != 130 {
		t.Fatalf("pending after the partial run = %d, want 130", n)
	}
	// The worker died after enqueueing but before recording the cursor.
	if err := b.db.Client.HSet(ctx, jobs.BatchKey(bt.ID), "expanded", 50).Err(); err != nil {
		t.Fatal(err)
	}
	if done, err := bs.Expand(ctx, bt.ID, 0); err != nil || !done {
		t.Fatalf("resumed expand = %v %v", done, err)
	}
	if n := pendingItems(t, b); n != 250 {
		t.Fatalf("pending after resuming = %d, want 250", n)
	}
	// Run every item; run some twice, as asynq may.
	for i := range 250 {
		p := jobs.BatchItemPayload{Batch: bt.ID, Index: i, CustomID: fmt.Sprintf("c%d", i)}
		for range 1 + i%2 {
			att, out, err := bs.StartItem(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if out != batches.ItemStarted {
				continue // the second run finds the slot filled
			}
			if att.Spec.Question() != fmt.Sprintf("q%d?", i) {
				t.Fatalf("item %d = %+v", i, att.Item)
			}
			if _, err := att.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}, Usage: json.RawMessage(`{}`)}, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	end, err := bs.Get(ctx, bt.ID)
	if err != nil || end.Status != jobs.BatchCompleted || end.Counts != (jobs.BatchCounts{Total: 250, Completed: 250}) {
		t.Fatalf("end = %+v %v", end, err)
	}
	lines, err := bs.Results(ctx, bt.ID, 0, 250)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		var r jobs.ItemResult
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.CustomID != fmt.Sprintf("c%d", i) || r.Status != jobs.StatusCompleted {
			t.Fatalf("result %d = %s (%v)", i, l, err)
		}
	}
	evs, err := bs.Events(ctx, bt.ID, "")
	if err != nil || evs[len(evs)-1].Type != jobs.EventCompleted {
		t.Fatalf("events = %v %v", eventTypes(evs), err)
	}
}

// The handler, not asynq's recoverer, records an item's last attempt: a
// start beyond MaxAttempts counts the item failed, so the batch ends.
func TestBatchItemGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{MaxAttempts: 2})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createBatch(t, bs, 1)
	p := jobs.BatchItemPayload{Batch: bt.ID, Index: 0, CustomID: "c0"}
	for want := 1; want <= 2; want++ {
		att, out, err := bs.StartItem(ctx, p)
		if err != nil || out != batches.ItemStarted || att.Number != want || att.Last != (want == 2) {
			t.Fatalf("start %d = %+v %v %v", want, att, out, err)
		}
	}
	// The third start gives up and counts the item failed.
	att, _, _ := bs.StartItem(ctx, p)
	if att != nil {
		t.Fatalf("third start ran: %+v", att)
	}
	end, _ := bs.Get(ctx, bt.ID)
	if end.Status != jobs.BatchCompleted || end.Counts.Failed != 1 {
		t.Fatalf("end = %+v", end)
	}
	lines, _ := bs.Results(ctx, bt.ID, 0, 1)
	var r jobs.ItemResult
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil || r.Error == nil || r.Error.Code != "attempts_exhausted" {
		t.Fatalf("result = %s", lines[0])
	}
}

func TestBatchDeferDoesNotCountAnAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{MaxAttempts: 1})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createBatch(t, bs, 1)
	p := jobs.BatchItemPayload{Batch: bt.ID}
	for range 3 {
		att, out, err := bs.StartItem(ctx, p)
		if err != nil || out != batches.ItemStarted || att.Number != 1 {
			t.Fatalf("start = %+v %v %v", att, out, err)
		}
		if err := att.Defer(ctx, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// A batch past its completion window ends expired, keeping what finished;
// its remaining items are dropped as workers reach them.
func TestBatchExpiresKeepingWhatFinished(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createBatch(t, bs, 3)
	item := func(i int) jobs.BatchItemPayload {
		return jobs.BatchItemPayload{Batch: bt.ID, Index: i}
	}
	att, _, _ := bs.StartItem(ctx, item(0))
	if _, err := att.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := bs.CheckWindow(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := bs.Get(ctx, bt.ID); got.Status != jobs.BatchInProgress {
		t.Fatalf("expired early: %+v", got)
	}
	if err := b.db.Client.HSet(ctx, jobs.BatchKey(bt.ID), "expires_at", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if _, out, err := bs.StartItem(ctx, item(1)); err != nil || out != batches.ItemSkipped {
		t.Fatalf("start after the window = %v %v", out, err)
	}
	end, _ := bs.Get(ctx, bt.ID)
	if end.Status != jobs.BatchExpired || end.Counts.Completed != 1 || end.ExpiredAt == nil {
		t.Fatalf("end = %+v", end)
	}
	if ttl := b.db.Client.PTTL(ctx, jobs.BatchResultsKey(bt.ID)).Val(); ttl <= 0 {
		t.Fatalf("results ttl = %v", ttl)
	}
	if _, err := bs.Cancel(ctx, bt.ID); !errors.Is(err, batches.ErrEnded) {
		t.Fatalf("cancel after the end: %v", err)
	}
}

// POST …/retry reopens a finished batch; its items are enqueued by a durable
// task queued first, so a crash between the two strands nothing, and running
// that task twice (asynq may) enqueues each failed item once.
func TestBatchRetryIsDurable(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createBatch(t, bs, 6)
	if done, err := bs.Expand(ctx, bt.ID, 0); err != nil || !done {
		t.Fatalf("expand = %v %v", done, err)
	}
	for i := range 6 {
		p := jobs.BatchItemPayload{Batch: bt.ID, Index: i, CustomID: fmt.Sprintf("c%d", i)}
		att, _, err := bs.StartItem(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			err = att.Fail(ctx, &jobs.Error{Code: "lm_error", Message: "boom"})
		} else {
			_, err = att.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}, Usage: json.RawMessage(`{}`)}, 0)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	insp := asynq.NewInspectorFromRedisClient(b.db.Client)
	if _, err := insp.DeleteAllPendingTasks(jobs.QueueBatch); err != nil {
		t.Fatal(err)
	}
	// Before the round is open, the requeue task waits (asynq retries it).
	if err := bs.Requeue(ctx, bt.ID, 1); err == nil {
		t.Fatal("requeue of an unopened round succeeded")
	}
	n, err := bs.Retry(ctx, bt.ID)
	if err != nil || n != 3 {
		t.Fatalf("retry = %d %v", n, err)
	}
	// The API died here: only the requeue task knows what to enqueue.
	if info, err := insp.GetQueueInfo(jobs.QueueBatchControl); err != nil || info.Pending < 1 {
		t.Fatalf("control queue = %+v %v, want the requeue task", info, err)
	}
	for range 2 {
		if err := bs.Requeue(ctx, bt.ID, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := pendingItems(t, b); got != 3 {
		t.Fatalf("pending items after two requeues = %d, want the 3 failed ones", got)
	}
	got, err := bs.Get(ctx, bt.ID)
	if err != nil || got.Status != jobs.BatchInProgress || got.Counts.Failed != 0 || got.Counts.Completed != 3 {
		t.Fatalf("reopened batch = %+v %v", got, err)
	}
}

// An owner's quota counts its live batches: an upload over it is refused
// (nothing kept), and a batch whose keys expire frees its share by itself,
// no code running at its expiry: the next read finds it gone.
func TestBatchQuota(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{QuotaItems: 5})
	ctx := context.Background()
	bt := createBatch(t, bs, 3)
	if u, err := bs.Usage(ctx, "alice"); err != nil || u.Items != 3 || u.Bytes <= 0 {
		t.Fatalf("usage = %+v %v", u, err)
	}
	items := []jobs.BatchItem{{CustomID: "a", Inputs: ask("a?")}, {CustomID: "b", Inputs: ask("b?")},
		{CustomID: "c", Inputs: ask("c?")}}
	var qe *batches.QuotaError
	if _, err := upload(ctx, bs, "alice", items); !errors.As(err, &qe) || qe.Resource != "items" || qe.Used != 3 || qe.Limit != 5 {
		t.Fatalf("create over the quota: %v", err)
	}
	if _, err := upload(ctx, bs, "bob", items); err != nil {
		t.Fatalf("another owner: %v", err)
	}
	expireBatch(t, b, bs, bt.ID)
	if u, err := bs.Usage(ctx, "alice"); err != nil || u != (batches.Usage{}) {
		t.Fatalf("usage after the batch expired = %+v %v", u, err)
	}
	if _, err := upload(ctx, bs, "alice", items); err != nil {
		t.Fatalf("create once the share is free: %v", err)
	}
}

// Cancelling frees the inputs of the items that never started, at once and
// whether or not they have a task yet, and their bytes from the owner's
// quota; started items keep theirs (a failed one may be retried) and the
// finished results stay.
func TestBatchCancelFreesUnstartedInputs(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{StoreChunk: 4})
	ctx := context.Background()
	bt := createBatch(t, bs, 20)
	// Half the items get a task; a crash stops the expansion there.
	if _, err := bs.Expand(ctx, bt.ID, 10); err != nil {
		t.Fatal(err)
	}
	item := func(i int) jobs.BatchItemPayload {
		return jobs.BatchItemPayload{Batch: bt.ID, Index: i, CustomID: fmt.Sprintf("c%d", i)}
	}
	for i := range 2 {
		att, _, err := bs.StartItem(ctx, item(i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := att.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	running, _, err := bs.StartItem(ctx, item(2))
	if err != nil {
		t.Fatal(err)
	}
	before, err := bs.Usage(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	cancelled, err := bs.Cancel(ctx, bt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.FreeInputs(ctx, cancelled); err != nil {
		t.Fatal(err)
	}
	// Items 3..9 have tasks: their inputs are gone already.
	left := func() []string {
		keys := b.db.Client.HKeys(ctx, jobs.BatchItemsKey(bt.ID)).Val()
		slices.Sort(keys)
		return keys
	}
	if got := left(); len(got) != 3+10 {
		t.Fatalf("inputs after cancel: %v, want items 0-2 and the 10 without a task", got)
	}
	// The expansion, run again, stops and frees the rest.
	if done, err := bs.Expand(ctx, bt.ID, 0); err != nil || !done {
		t.Fatalf("expand = %v %v", done, err)
	}
	if got := left(); strings.Join(got, ",") != "0,1,2" {
		t.Fatalf("inputs after the expansion stopped: %v, want the 3 started items'", got)
	}
	after, err := bs.Usage(ctx, "alice")
	if err != nil || after.Items != 20 || after.Bytes >= before.Bytes || after.Bytes <= 0 {
		t.Fatalf("usage %+v before cancel, %+v after", before, after)
	}
	// The queued tasks drain as no-ops, the running item ends, the batch
	// ends cancelled with the finished results kept.
	for i := 3; i < 10; i++ {
		if _, out, err := bs.StartItem(ctx, item(i)); err != nil || out != batches.ItemSkipped {
			t.Fatalf("start %d after cancel: %v %v", i, out, err)
		}
	}
	if err := running.Cancelled(ctx); err != nil {
		t.Fatal(err)
	}
	end, err := bs.Get(ctx, bt.ID)
	if err != nil || end.Status != jobs.BatchCancelled || end.Counts != (jobs.BatchCounts{Total: 20, Completed: 2, Cancelled: 18}) {
		t.Fatalf("end = %+v %v", end, err)
	}
	res, err := bs.Results(ctx, bt.ID, 0, 2)
	if err != nil || !strings.Contains(res[0], `"completed"`) || !strings.Contains(res[1], `"completed"`) {
		t.Fatalf("finished results: %q %v", res, err)
	}
}

// createBatchOf stores an n-item batch of owner.
func createBatchOf(t *testing.T, bs *batches.Store, owner string, n int) *jobs.Batch {
	t.Helper()
	items := make([]jobs.BatchItem, n)
	for i := range items {
		items[i] = jobs.BatchItem{CustomID: fmt.Sprintf("c%d", i), Inputs: ask(fmt.Sprintf("q%d?", i))}
	}
	c, err := upload(context.Background(), bs, owner, items)
	if err != nil {
		t.Fatal(err)
	}
	return c.Batch
}

// An API key named "active" is an owner like any other: the count of owners
// with running batches is not its batch index.
func TestBatchOwnerNamedActive(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	alice := createBatchOf(t, bs, "alice", 1)
	active := createBatchOf(t, bs, "active", 1)
	list, _, err := bs.List(ctx, "active", "", 10)
	if err != nil || len(list) != 1 || list[0].ID != active.ID {
		t.Fatalf("active's batches = %v %v, want only its own", list, err)
	}
	if n, err := bs.ActiveOwners(ctx); err != nil || n != 2 {
		t.Fatalf("owners with running batches = %d %v, want 2", n, err)
	}
	finish := func(bt *jobs.Batch, owner string) {
		t.Helper()
		att, _, err := bs.StartItem(ctx, jobs.BatchItemPayload{Batch: bt.ID, CustomID: "c0"})
		if err != nil || att == nil {
			t.Fatalf("start: %v", err)
		}
		if _, err := att.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	finish(alice, "alice")
	if n, err := bs.ActiveOwners(ctx); err != nil || n != 1 {
		t.Fatalf("owners with running batches = %d %v, want 1", n, err)
	}
	finish(active, "active")
	if n, err := bs.ActiveOwners(ctx); err != nil || n != 0 {
		t.Fatalf("owners with running batches = %d %v, want 0", n, err)
	}
	if list, _, err := bs.List(ctx, "active", "", 10); err != nil || len(list) != 1 || list[0].Status != jobs.BatchCompleted {
		t.Fatalf("active's batches = %v %v, want its completed batch", list, err)
	}

	// A batch that ran across the upgrade from qa:batches:active is missing
	// from the count; its end leaves no negative entry behind.
	old := createBatchOf(t, bs, "bob", 1)
	if err := b.db.Client.ZRem(ctx, jobs.ActiveOwnersKey, "bob").Err(); err != nil {
		t.Fatal(err)
	}
	finish(old, "bob")
	if err := b.db.Client.ZScore(ctx, jobs.ActiveOwnersKey, "bob").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("bob's count after the upgrade's batch ended: %v, want no entry", err)
	}
}

// itemOf is the payload of item i of bt, as the expansion enqueues it.
// failedBatch is a batch of n items, expanded, every item failed once: a
// batch a retry can reopen.
func failedBatch(t *testing.T, bs *batches.Store, n int) *jobs.Batch {
	t.Helper()
	ctx := context.Background()
	bt := createBatch(t, bs, n)
	if _, err := bs.Expand(ctx, bt.ID, 0); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		att, _, err := bs.StartItem(ctx, itemOf(bt, i))
		if err != nil {
			t.Fatal(err)
		}
		if err := att.Fail(ctx, &jobs.Error{Code: "lm_error", Message: "boom"}); err != nil {
			t.Fatal(err)
		}
	}
	return bt
}

func itemOf(bt *jobs.Batch, i int) jobs.BatchItemPayload {
	return jobs.BatchItemPayload{Batch: bt.ID, Index: i, CustomID: fmt.Sprintf("c%d", i)}
}

// requeue deletes the pending item tasks, runs the requeue task of round
// and returns how many item tasks it enqueued.
func requeue(t *testing.T, b *bundle, bs *batches.Store, bt *jobs.Batch, round int) int {
	t.Helper()
	if err := bs.Requeue(context.Background(), bt.ID, round); err != nil {
		t.Fatal(err)
	}
	return pendingItems(t, b)
}

func clearItemTasks(t *testing.T, b *bundle) {
	t.Helper()
	if _, err := asynq.NewInspectorFromRedisClient(b.db.Client).DeleteAllPendingTasks(jobs.QueueBatch); err != nil {
		t.Fatal(err)
	}
}

// An item refused for the budget fails without starting; a cancel must not
// free its input, or a retry would reopen it with nothing to run and the
// batch would hang until its window ended.
func TestBatchRetryAfterBudgetRefusalAndCancel(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{TokenBudgetPerDay: 10})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createBatch(t, bs, 2)
	if _, err := bs.Expand(ctx, bt.ID, 0); err != nil {
		t.Fatal(err)
	}
	usage := jobs.UsageKey("alice", jobs.UsageDay(time.Now()))
	if err := b.db.Client.Set(ctx, usage, 10, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, out, err := bs.StartItem(ctx, itemOf(bt, 0)); err != nil || out != batches.ItemOverBudget {
		t.Fatalf("start over budget: %v %v", out, err)
	}
	if _, err := bs.Cancel(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	if _, out, err := bs.StartItem(ctx, itemOf(bt, 1)); err != nil || out != batches.ItemSkipped {
		t.Fatalf("start after the cancel: %v %v", out, err)
	}
	if got, _ := bs.Get(ctx, bt.ID); got.Status != jobs.BatchCancelled || got.Counts != (jobs.BatchCounts{Total: 2, Failed: 1, Cancelled: 1}) {
		t.Fatalf("cancelled batch = %+v", got)
	}
	// A new day: the budget is back.
	if err := b.db.Client.Del(ctx, usage).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := bs.Retry(ctx, bt.ID); err != nil || n != 1 {
		t.Fatalf("retry = %d %v", n, err)
	}
	clearItemTasks(t, b)
	if n := requeue(t, b, bs, bt, 1); n != 1 {
		t.Fatalf("requeue enqueued %d items, want the refused one", n)
	}
	att, out, err := bs.StartItem(ctx, itemOf(bt, 0))
	if err != nil || out != batches.ItemStarted || att.Spec.Question() != "q0?" {
		t.Fatalf("start of the retried item: %+v %v %v", att, out, err)
	}
	if _, err := att.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}}, 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := bs.Get(ctx, bt.ID); got.Status != jobs.BatchCompleted || got.Counts != (jobs.BatchCounts{Total: 2, Completed: 1, Cancelled: 1}) {
		t.Fatalf("end = %+v", got)
	}
}

// A retry round cancelled before its requeue task ran: the reopened items
// still get their tasks, which count them cancelled (and free their inputs),
// so the batch ends.
func TestBatchRetryRoundCancelledBeforeItsRequeue(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := failedBatch(t, bs, 2)
	if n, err := bs.Retry(ctx, bt.ID); err != nil || n != 2 {
		t.Fatalf("retry = %d %v", n, err)
	}
	if _, err := bs.Cancel(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	clearItemTasks(t, b)
	if n := requeue(t, b, bs, bt, 1); n != 2 {
		t.Fatalf("requeue enqueued %d items, want the 2 reopened ones", n)
	}
	for i := range 2 {
		if _, out, err := bs.StartItem(ctx, itemOf(bt, i)); err != nil || out != batches.ItemSkipped {
			t.Fatalf("start %d: %v %v", i, out, err)
		}
	}
	if got, _ := bs.Get(ctx, bt.ID); got.Status != jobs.BatchCancelled || got.Counts != (jobs.BatchCounts{Total: 2, Cancelled: 2}) {
		t.Fatalf("end = %+v", got)
	}
	if n := b.db.Client.HLen(ctx, jobs.BatchItemsKey(bt.ID)).Val(); n != 0 {
		t.Fatalf("%d inputs left once every item was counted cancelled", n)
	}
}

// A failed item whose input is gone (freed by a cancel before cancels kept
// failed items' inputs) is not reopened by a retry, which has nothing to run:
// it stays failed, its line saying why.
func TestBatchRetryKeepsAnItemWithoutInputFailed(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := failedBatch(t, bs, 2)
	if err := b.db.Client.HDel(ctx, jobs.BatchItemsKey(bt.ID), "1").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := bs.Retry(ctx, bt.ID); err != nil || n != 1 {
		t.Fatalf("retry = %d %v, want the item that has its input", n, err)
	}
	lines, err := bs.Results(ctx, bt.ID, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	var kept jobs.ItemResult
	if err := json.Unmarshal([]byte(lines[1]), &kept); err != nil || kept.CustomID != "c1" || kept.Status != jobs.StatusFailed ||
		kept.Error == nil || kept.Error.Code != "input_missing" || kept.Attempts != 1 {
		t.Fatalf("line of the item without input = %s (%v)", lines[1], err)
	}
	clearItemTasks(t, b)
	if n := requeue(t, b, bs, bt, 1); n != 1 {
		t.Fatalf("requeue enqueued %d items, want 1", n)
	}
	att, _, err := bs.StartItem(ctx, itemOf(bt, 0))
	if err != nil || att == nil {
		t.Fatalf("start: %v", err)
	}
	if _, err := att.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}}, 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := bs.Get(ctx, bt.ID); got.Status != jobs.BatchCompleted || got.Counts != (jobs.BatchCounts{Total: 2, Completed: 1, Failed: 1}) {
		t.Fatalf("end = %+v", got)
	}
	// Only that item is left failed: nothing to retry, and no round opens.
	if _, err := bs.Retry(ctx, bt.ID); !errors.Is(err, batches.ErrNothingToRetry) {
		t.Fatalf("second retry: %v, want ErrNothingToRetry", err)
	}
	if got, _ := bs.Get(ctx, bt.ID); got.Status != jobs.BatchCompleted || got.Round != 1 {
		t.Fatalf("after the second retry = %+v", got)
	}
}

// A cancel that worked is not undone by the freeing of inputs after it:
// Cancel answers the cancelled batch, FreeInputs reports its own failure,
// and the items' tasks free what it left as they drain.
func TestBatchCancelSucceedsWhenFreeingFails(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	faulty := redis.NewClient(b.db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	faulty.AddHook(redistest.RefuseScripts{Match: func(_ []string, args []any) bool {
		return len(args) > 0 && args[0] == "free_inputs"
	}})
	jobStore, err := store.NewJobs(faulty, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batches.NewStore(jobStore, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bt := createBatch(t, bs, 3)
	if _, err := bs.Expand(ctx, bt.ID, 0); err != nil {
		t.Fatal(err)
	}
	got, err := bs.Cancel(ctx, bt.ID)
	if err != nil || got.Status != jobs.BatchCancelling {
		t.Fatalf("cancel = %+v %v, want the batch cancelling", got, err)
	}
	if err := bs.FreeInputs(ctx, got); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("free inputs = %v, want the refusal", err)
	}
	if n := b.db.Client.HLen(ctx, jobs.BatchItemsKey(bt.ID)).Val(); n != 3 {
		t.Fatalf("%d inputs after the refused freeing, want 3", n)
	}
	for i := range 3 {
		if _, out, err := bs.StartItem(ctx, itemOf(bt, i)); err != nil || out != batches.ItemSkipped {
			t.Fatalf("start %d: %v %v", i, out, err)
		}
	}
	if n := b.db.Client.HLen(ctx, jobs.BatchItemsKey(bt.ID)).Val(); n != 0 {
		t.Fatalf("%d inputs once the tasks drained, want 0", n)
	}
	if u, err := bs.Usage(ctx, "alice"); err != nil || u.Bytes != 0 || u.Items != 3 {
		t.Fatalf("usage = %+v %v, want the items' bytes freed", u, err)
	}
}

// crashAt makes a Redis client act as if its process died at a script op:
// that op runs (or, with before, does not), and no script after it does.
type crashAt struct {
	op     string
	before bool
	dead   atomic.Bool
}

func (c *crashAt) client(t *testing.T, b *bundle) *batches.Store {
	t.Helper()
	faulty := redis.NewClient(b.db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	faulty.AddHook(redistest.RefuseScripts{Match: func(_ []string, args []any) bool {
		if c.dead.Load() {
			return true
		}
		if len(args) > 0 && args[0] == c.op {
			c.dead.Store(true)
			return c.before
		}
		return false
	}})
	jobStore, err := store.NewJobs(faulty, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batches.NewStore(jobStore, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// uploadedBatch is the id of the one batch record in b's database.
func uploadedBatch(t *testing.T, b *bundle) string {
	t.Helper()
	keys := b.db.Client.Keys(context.Background(), "qa:batch:batch_*").Val()
	var ids []string
	for _, k := range keys {
		if id := strings.TrimPrefix(k, "qa:batch:"); !strings.Contains(id, ":") {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("batch records: %v, want one", keys)
	}
	return ids[0]
}

// A process that dies during an upload's commit leaves no live batch
// without its expansion and window check (which would hold its owner's
// quota for its whole life): they are enqueued before the batch goes live,
// and the expansion waits while the upload is uncommitted and ends quietly
// once its keys are gone.
func TestBatchCommitCrashLeavesNoBatchWithoutTasks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, before := range []bool{false, true} {
		b := setup(t, store.Config{})
		healthy := newBatches(t, b, batches.Config{})
		// Redis knows the script, as it does once a fleet runs: else the
		// accept's EVALSHA, let through, fails NOSCRIPT and its EVAL, after
		// the crash, is refused.
		if _, err := healthy.Usage(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		crash := &crashAt{op: "accept", before: before}
		u, err := crash.client(t, b).BeginUpload(ctx, batches.UploadRequest{Spec: batchOf("alice"), TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := u.Add(ctx, jobs.BatchItem{CustomID: fmt.Sprint(i), Inputs: ask("q?")}); err != nil {
				t.Fatal(err)
			}
		}
		_, _ = u.Commit(ctx, "", "") // the process dies during it
		id := uploadedBatch(t, b)
		insp := asynq.NewInspectorFromRedisClient(b.db.Client)
		for _, task := range []string{"expand-" + id, "check-" + id} {
			if _, err := insp.GetTaskInfo(jobs.QueueBatchControl, task); err != nil {
				t.Fatalf("crash at accept (before %v): task %s: %v", before, task, err)
			}
		}
		status := b.db.Client.HGet(ctx, jobs.BatchKey(id), "status").Val()
		if before {
			if status != string(jobs.BatchValidating) {
				t.Fatalf("crash before accept: status %q", status)
			}
			if _, err := healthy.Expand(ctx, id, 0); !errors.Is(err, batches.ErrUploading) {
				t.Fatalf("expand of an uncommitted upload: %v, want ErrBatchUploading", err)
			}
			// Its keys expire (the upload's TTL).
			if err := b.db.Client.Del(ctx, jobs.BatchKey(id), jobs.BatchItemsKey(id)).Err(); err != nil {
				t.Fatal(err)
			}
			if done, err := healthy.Expand(ctx, id, 0); err != nil || !done {
				t.Fatalf("expand of a removed upload = %v %v, want done", done, err)
			}
			continue
		}
		if status != string(jobs.BatchInProgress) {
			t.Fatalf("crash after accept: status %q", status)
		}
		if done, err := healthy.Expand(ctx, id, 0); err != nil || !done || pendingItems(t, b) != 3 {
			t.Fatalf("expand after the crash = %v %v", done, err)
		}
	}
}

// An upload's TTL is the caller's to give (only it knows how long the rest
// of the upload may take): there is no default to fall back on.
func TestBeginUploadRequiresATTL(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	if u, err := bs.BeginUpload(context.Background(), batches.UploadRequest{Spec: batchOf("alice")}); err == nil || !strings.Contains(err.Error(), "TTL") {
		t.Fatalf("upload without a TTL = %v %v, want refused naming TTL", u, err)
	}
}

// TestBatchCancelCountsAnItemPastTheCursorOnce: an expansion that crashed
// after enqueueing a chunk, before recording its cursor, leaves tasks past
// the cursor. Cancelled, the stopped expansion counts every item past the
// cursor cancelled; those tasks, starting or finishing later, must not
// count their item a second time (the counts would pass the total and the
// batch end early).
func TestBatchCancelCountsAnItemPastTheCursorOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{StoreChunk: 4})
	ctx := context.Background()
	bt := createBatch(t, bs, 12)
	if _, err := bs.Expand(ctx, bt.ID, 4); err != nil { // cursor at 4
		t.Fatal(err)
	}
	// Items 4 and 5 had tasks the cursor does not know of: one started
	// before the cancel, one waits.
	running, _, err := bs.StartItem(ctx, itemOf(bt, 4))
	if err != nil {
		t.Fatal(err)
	}
	keep, _, err := bs.StartItem(ctx, itemOf(bt, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Cancel(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	if done, err := bs.Expand(ctx, bt.ID, 0); err != nil || !done { // stops: 4..11 counted cancelled
		t.Fatalf("expand = %v %v", done, err)
	}
	if _, out, err := bs.StartItem(ctx, itemOf(bt, 5)); err != nil || out != batches.ItemSkipped {
		t.Fatalf("start of a task past the cursor: %v %v", out, err)
	}
	if _, err := running.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}}, 0); err != nil {
		t.Fatal(err)
	}
	mid, err := bs.Get(ctx, bt.ID)
	if err != nil || mid.Status != jobs.BatchCancelling || mid.Counts != (jobs.BatchCounts{Total: 12, Cancelled: 8}) {
		t.Fatalf("after the tasks past the cursor: %+v %v, want cancelling with items 4-11 cancelled, once", mid, err)
	}
	for i := 1; i < 4; i++ { // the queued tasks before the cursor drain
		if _, out, err := bs.StartItem(ctx, itemOf(bt, i)); err != nil || out != batches.ItemSkipped {
			t.Fatalf("start %d: %v %v", i, out, err)
		}
	}
	if _, err := keep.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}}, 0); err != nil {
		t.Fatal(err)
	}
	end, err := bs.Get(ctx, bt.ID)
	if err != nil || end.Status != jobs.BatchCancelled || end.Counts != (jobs.BatchCounts{Total: 12, Completed: 1, Cancelled: 11}) {
		t.Fatalf("end = %+v %v", end, err)
	}
}

// loseFirstReply is a go-redis hook whose first pipeline reaches Redis but
// whose reply is lost, as when the connection drops after the write.
type loseFirstReply struct{ lost atomic.Bool }

func (*loseFirstReply) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*loseFirstReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *loseFirstReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if len(cmds) > 1 && cmds[0].Name() == "hset" && h.lost.CompareAndSwap(false, true) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
}

// TestUploadAbortAfterALostReply: an upload whose first write reached Redis
// but whose reply was lost is refused, and its abort still removes what the
// write stored rather than leaving it for the TTL.
func TestUploadAbortAfterALostReply(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	faulty := redis.NewClient(b.db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	faulty.AddHook(&loseFirstReply{})
	jobStore, err := store.NewJobs(faulty, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batches.NewStore(jobStore, batches.Config{StoreChunk: 2})
	if err != nil {
		t.Fatal(err)
	}
	u, err := bs.BeginUpload(ctx, batches.UploadRequest{Spec: batchOf("alice"), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		err = u.Add(ctx, jobs.BatchItem{CustomID: fmt.Sprint(i), Inputs: ask("q")})
	}
	if err == nil {
		t.Fatal("the chunk's write reported no error")
	}
	if n := len(b.db.Client.Keys(ctx, "qa:batch:*").Val()); n == 0 {
		t.Fatal("the lost write stored nothing: the test no longer loses a reply")
	}
	u.Abort(ctx)
	if keys := b.db.Client.Keys(ctx, "qa:batch:*").Val(); len(keys) != 0 {
		t.Fatalf("after the abort: %v, want nothing of the upload", keys)
	}
}

// An item's line counts, in its provenance, its attempts and the LM calls
// of every attempt: those put back (Retry, Defer) add theirs, the one that
// completes it brings its own. A retry round of the batch starts the count
// over, as it does the attempts.
func TestBatchLineCountsLMCallsOfEveryAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createBatch(t, bs, 2)
	start := func(i int) *batches.ItemAttempt {
		t.Helper()
		att, out, err := bs.StartItem(ctx, itemOf(bt, i))
		if err != nil || out != batches.ItemStarted {
			t.Fatalf("start %d: %v %v", i, out, err)
		}
		return att
	}
	line := func(i int) jobs.ItemResult {
		t.Helper()
		lines, err := bs.Results(ctx, bt.ID, i, i+1)
		if err != nil {
			t.Fatal(err)
		}
		var r jobs.ItemResult
		if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	lmErr := &jobs.Error{Code: "lm_error", Message: "LM returned 503"}
	r := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}},
		Provenance: jobs.Provenance{Model: "m", StateSHA256: "s", LMCalls: 1}}

	a := start(0)
	a.LMCalls = 2
	if err := a.Retry(ctx, lmErr, time.Second); err != nil {
		t.Fatal(err)
	}
	a = start(0)
	a.LMCalls = 1
	if err := a.Defer(ctx, &jobs.Error{Code: "rate_limited", Message: "later"}, time.Second); err != nil {
		t.Fatal(err)
	}
	a = start(0) // the second counted attempt: the deferred one was not
	if _, err := a.Complete(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	want := jobs.Provenance{Model: "m", StateSHA256: "s", Attempts: 2, LMCalls: 4}
	if got := line(0); got.Attempts != 2 || got.Provenance == nil || *got.Provenance != want {
		t.Fatalf("line = %+v %+v, want provenance %+v", got, got.Provenance, want)
	}

	// Failed, after an attempt put back with its LM call; run again in a
	// retry round, which counts from nothing.
	a = start(1)
	a.LMCalls = 1
	if err := a.Retry(ctx, lmErr, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := start(1).Fail(ctx, lmErr); err != nil {
		t.Fatal(err)
	}
	if n, err := bs.Retry(ctx, bt.ID); err != nil || n != 1 {
		t.Fatalf("retry = %d %v", n, err)
	}
	if _, err := start(1).Complete(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	want = jobs.Provenance{Model: "m", StateSHA256: "s", Attempts: 1, LMCalls: 1}
	if got := line(1); got.Attempts != 1 || got.Provenance == nil || *got.Provenance != want {
		t.Fatalf("line after a retry round = %+v %+v, want provenance %+v", got, got.Provenance, want)
	}
}
