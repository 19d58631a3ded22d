package offload_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/offload"
)

// TestProviderBatchGone: a chunk whose provider batch the provider no
// longer has (a 404: purged, or deleted in its console) has ended without
// answers: its items go on per PROVIDER_UNFINISHED, a failed one's reason
// naming the provider batch, and the provider object says what happened.
// The runner does not error run after run.
func TestProviderBatchGone(t *testing.T) {
	for _, unfinished := range []string{offload.UnfinishedFail, offload.UnfinishedLive} {
		t.Run(unfinished, func(t *testing.T) {
			b := setup(t, offload.Config{Unfinished: unfinished}, fakelm.BatchConfig{})
			bt := b.qaBatch(t, "Why is the sky blue?", "Who wrote Hamlet?")
			b.expand(t, bt)
			pbID := b.providerBatchOf(t, bt.ID)
			if !b.srv.PurgeBatch(pbID) {
				t.Fatalf("the fake has no batch %s", pbID)
			}
			b.runToEnd(t, bt.ID)
			end := b.get(t, bt.ID)
			if p := end.Provider; p == nil || p.Error == nil || !strings.Contains(p.Error.Message, pbID) {
				t.Errorf("provider object %+v, want its error naming %s", p, pbID)
			}
			wantGone(t, b, end, unfinished, pbID, 2)
		})
	}
}

// TestProviderFileGone: an output file the provider no longer has when
// the runner downloads it (deleted in its console) leaves the lines it
// held unanswered: their items go on per PROVIDER_UNFINISHED; the lines of
// the chunk's error file are recorded all the same.
func TestProviderFileGone(t *testing.T) {
	for _, unfinished := range []string{offload.UnfinishedFail, offload.UnfinishedLive} {
		t.Run(unfinished, func(t *testing.T) {
			b := setup(t, offload.Config{Unfinished: unfinished}, fakelm.BatchConfig{FailEvery: 3, FailStatus: 400})
			bt := b.qaBatch(t, "Why is the sky blue?", "Who wrote Hamlet?", "What is Go?")
			b.expand(t, bt)
			pbID := b.providerBatchOf(t, bt.ID)
			// The provider ends the batch before the runner looks again, and
			// its output file is deleted meanwhile.
			ctx := context.Background()
			var outID string
			for range 10 {
				b.srv.StepBatches()
				pb, err := b.api.GetBatch(ctx, pbID)
				if err != nil {
					t.Fatal(err)
				}
				if pb.Status == "completed" {
					outID = pb.OutputFileID
					break
				}
			}
			if outID == "" {
				t.Fatal("the provider batch never completed with an output file")
			}
			if err := b.api.DeleteFile(ctx, outID); err != nil {
				t.Fatal(err)
			}
			b.runToEnd(t, bt.ID)
			end := b.get(t, bt.ID)
			if r := b.results(t, end)[2]; r.Status != jobs.StatusFailed || r.Error == nil || r.Error.Code != "lm_error" {
				t.Errorf("item 2 %+v, want failed with its error line's error", r)
			}
			if p := end.Provider; p == nil || p.Error == nil || !strings.Contains(p.Error.Message, outID) {
				t.Errorf("provider object %+v, want its error naming %s", p, outID)
			}
			wantGone(t, b, end, unfinished, outID, 2)
		})
	}
}

// wantGone checks that batch end's first n items went on as unanswered:
// failed naming id, or on the live path.
func wantGone(t *testing.T, b *bundle, end *jobs.Batch, unfinished, id string, n int) {
	t.Helper()
	rs := b.results(t, end)
	if unfinished == offload.UnfinishedFail {
		for i, r := range rs[:n] {
			if r.Status != jobs.StatusFailed || r.Error == nil || r.Error.Code != "provider_unfinished" || !strings.Contains(r.Error.Message, id) {
				t.Errorf("item %d %+v, want failed unfinished naming %s", i, r, id)
			}
		}
		return
	}
	info, err := asynq.NewInspectorFromRedisClient(b.db.Client).GetQueueInfo(jobs.QueueBatch)
	if err != nil {
		t.Fatal(err)
	}
	if info.Pending != n {
		t.Errorf("%d item tasks on the live path, want the %d unanswered", info.Pending, n)
	}
}

// TestCancelWithProviderBatchGone: a batch cancelled while its provider
// batch is gone at the provider is cancelled all the same: the cancel of
// that provider batch (a 404) does not fail run after run.
func TestCancelWithProviderBatchGone(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{})
	bt := b.qaBatch(t, "Why is the sky blue?", "Who wrote Hamlet?")
	b.expand(t, bt)
	pbID := b.providerBatchOf(t, bt.ID)
	if !b.srv.PurgeBatch(pbID) {
		t.Fatalf("the fake has no batch %s", pbID)
	}
	if _, err := b.bs.Cancel(context.Background(), bt.ID); err != nil {
		t.Fatal(err)
	}
	b.runToEnd(t, bt.ID)
	if end := b.waitEnded(t, bt.ID); end.Status != jobs.BatchCancelled || end.Counts.Cancelled != 2 {
		t.Errorf("batch %s %+v, want both items cancelled", end.Status, end.Counts)
	}
}

// providerBatchOf runs batch id's runner until its one chunk has a
// provider batch, and returns that batch's id.
func (b *bundle) providerBatchOf(t *testing.T, id string) string {
	t.Helper()
	var pbID string
	b.runUntil(t, id, func(_ batches.OffloadState, chunks []batches.OffloadChunk) bool {
		if len(chunks) == 1 && chunks[0].BatchID != "" {
			pbID = chunks[0].BatchID
			return true
		}
		return false
	})
	return pbID
}
