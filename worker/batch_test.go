package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/rs/zerolog"
)

// Repeated questions in a batch reach the LM once with caching on: later
// repeats hit the LM cache, repeats running side by side share one run.
func TestBatchRepeatedQuestionsReachTheLMOnce(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	lm, err := fakelm.New(fakelm.Config{TTFT: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	lc, err := lmclient.New(lmclient.Config{APIBase: lm.URL() + "/v1", APIKey: "test", Timeout: 10 * time.Second, MemoryEnabled: true},
		lmclient.Deps{Redis: db.Client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	store, err := jobs.NewStore(db.Client, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	batches, err := jobs.NewBatches(store, jobs.BatchConfig{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{Concurrency: 2, BatchConcurrency: 8, ShutdownTimeout: 5 * time.Second},
		worker.Deps{Redis: db.Client, Store: store, Runner: worker.NewProgramRunner(program.NewQA(), lc), Batches: batches, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)

	items := make([]jobs.BatchItem, 60)
	for i := range items {
		items[i] = jobs.BatchItem{CustomID: fmt.Sprint(i), Question: fmt.Sprintf("What is topic %d?", i%3)}
	}
	c, err := batches.Create(context.Background(), jobs.CreateRequest{Owner: "o", Items: items})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := batches.Get(context.Background(), c.Batch.ID)
		if err != nil {
			t.Fatal(err)
		}
		if b.Status.Terminal() {
			if b.Counts.Completed != 60 {
				t.Fatalf("end = %+v", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch did not end: %+v", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := lm.Requests(); n != 3 {
		t.Fatalf("LM requests = %d, want 3 (one per distinct question)", n)
	}
}
