package offload_test

import (
	"context"
	"testing"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/offload"
)

// TestCancelAfterKillBetweenCreateAndRecord: a runner killed between
// creating a chunk's provider batch and recording it, its batch cancelled
// before the next run, still finds that provider batch: it is cancelled
// (not left running, billed, unseen) and what it answered is recorded.
func TestCancelAfterKillBetweenCreateAndRecord(t *testing.T) {
	ctx, kill := context.WithCancel(context.Background())
	created := make(chan string, 4)
	b := setup(t, offload.Config{}, fakelm.BatchConfig{StallAfter: 1, OnCreate: func(id string, _ map[string]string) {
		created <- id
		kill()
	}})
	bt := b.qaBatch(t, "Why is the sky blue?", "Who wrote Hamlet?")
	b.expand(t, bt)
	if _, err := b.r.Run(ctx, bt.ID); err == nil {
		t.Fatal("the killed run reported no error")
	}
	if _, err := b.bs.Cancel(context.Background(), bt.ID); err != nil {
		t.Fatal(err)
	}
	b.runToEnd(t, bt.ID)
	if n := b.srv.BatchesCreated(); n != 1 {
		t.Fatalf("%d provider batches created, want 1", n)
	}
	pb, err := b.api.GetBatch(context.Background(), <-created)
	if err != nil {
		t.Fatal(err)
	}
	if pb.Status != "cancelled" {
		t.Errorf("the unrecorded provider batch is %s, want cancelled", pb.Status)
	}
	end := b.waitEnded(t, bt.ID)
	if end.Status != jobs.BatchCancelled || end.Counts.Completed+end.Counts.Cancelled != 2 {
		t.Errorf("batch %s %+v", end.Status, end.Counts)
	}
}
