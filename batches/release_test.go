package batches_test

import (
	"context"
	"testing"

	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// cancelUnexpanded cancels bt before its expansion, then runs the
// expansion, which counts every item cancelled and frees every input: the
// batch's quota share keeps its items and no bytes.
func cancelUnexpanded(t *testing.T, bs *batches.Store, bt *jobs.Batch) {
	t.Helper()
	ctx := context.Background()
	if _, err := bs.Cancel(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	if done, err := bs.Expand(ctx, bt.ID, 0); err != nil || !done {
		t.Fatalf("expand = %v, %v", done, err)
	}
	if end, err := bs.Get(ctx, bt.ID); err != nil || end.Status != jobs.BatchCancelled {
		t.Fatalf("after the expansion: %+v, %v", end, err)
	}
	if u, err := bs.Usage(ctx, "alice"); err != nil || u.Items != int64(bt.Counts.Total) || u.Bytes != 0 {
		t.Fatalf("usage = %+v, %v; want the items kept, no bytes", u, err)
	}
}

// TestBatchDeleteOfABatchWithoutInputs: a batch whose every input a cancel
// freed (its share holds items, no bytes) is deleted, live or provider
// mode, and its share freed: releasing a zero part of a share must not send
// Redis a "-0" it refuses as an integer.
func TestBatchDeleteOfABatchWithoutInputs(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	for _, create := range []func(*testing.T, *batches.Store, int) *jobs.Batch{createBatch, createProviderBatch} {
		bt := create(t, bs, 3)
		cancelUnexpanded(t, bs, bt)
		if err := bs.Delete(ctx, bt.ID); err != nil {
			t.Fatalf("delete %s batch: %v", bt.Mode, err)
		}
		if u, err := bs.Usage(ctx, "alice"); err != nil || u != (batches.Usage{}) {
			t.Fatalf("usage after deleting the %s batch = %+v, %v", bt.Mode, u, err)
		}
	}
}

// TestBatchExpiryOfABatchWithoutInputs: such a batch whose keys expire by
// TTL frees its share at the owner's next read, and the owner can upload
// again: a failing release would fail every later upload of the owner.
func TestBatchExpiryOfABatchWithoutInputs(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createBatch(t, bs, 3)
	cancelUnexpanded(t, bs, bt)
	expireBatch(t, b, bs, bt.ID)
	if u, err := bs.Usage(ctx, "alice"); err != nil || u != (batches.Usage{}) {
		t.Fatalf("usage after the batch expired = %+v, %v", u, err)
	}
	createBatch(t, bs, 1)
}

// TestProviderBatchDeleteAfterCancelKeepsNoShare: a provider batch cancelled
// after its expansion keeps its inputs for its runner; once the runner ends
// it, deleting it frees its whole share.
func TestProviderBatchDeleteAfterCancelKeepsNoShare(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := expandedProviderBatch(t, bs, 3)
	cancelled, err := bs.Cancel(ctx, bt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.FreeInputs(ctx, cancelled); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		att, out, err := bs.StartItemTask(ctx, jobs.BatchItemPayload{Batch: bt.ID, Index: i, CustomID: "c" + string(rune('a'+i))}, "offload-"+bt.ID, "")
		if err != nil || out != batches.ItemStarted {
			t.Fatalf("runner's start of item %d = %v, %v", i, out, err)
		}
		if err := att.Cancelled(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if end, err := bs.Get(ctx, bt.ID); err != nil || end.Status != jobs.BatchCancelled {
		t.Fatalf("end = %+v, %v", end, err)
	}
	if err := bs.Delete(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	if u, err := bs.Usage(ctx, "alice"); err != nil || u != (batches.Usage{}) {
		t.Fatalf("usage after the delete = %+v, %v", u, err)
	}
}
