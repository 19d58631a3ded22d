package batches_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// listen collects what is published on batch channels.
func listen(t *testing.T, b *bundle) *redistest.Published {
	t.Helper()
	return redistest.Listen(t, b.db, jobs.BatchChannel("*"))
}

// progress is a batch event as its Go type renders it.
func progress(t *testing.T, status jobs.BatchStatus, c jobs.BatchCounts) string {
	t.Helper()
	typ := jobs.EventProgress
	if status.Terminal() {
		typ = jobs.EventType(status)
	}
	b, err := json.Marshal(jobs.BatchProgress{Status: status, RequestCounts: c})
	if err != nil {
		t.Fatal(err)
	}
	return string(typ) + " " + string(b)
}

// checkBatchEvents compares batch id's stream, and what its channel carried,
// with the Go rendering of wants.
func checkBatchEvents(t *testing.T, bs *batches.Store, p *redistest.Published, id string, wants ...string) {
	t.Helper()
	evs, err := bs.Events(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	var got, envelopes []string
	for _, ev := range evs {
		got = append(got, string(ev.Type)+" "+string(ev.Data))
		env, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		envelopes = append(envelopes, string(env))
	}
	if diff := cmp.Diff(wants, got); diff != "" {
		t.Fatalf("batch %s: stream (-want +got):\n%s", id, diff)
	}
	if diff := cmp.Diff(envelopes, p.Wait(t, jobs.BatchChannel(id), len(envelopes))); diff != "" {
		t.Fatalf("batch %s: published (-want +got):\n%s", id, diff)
	}
}

// TestBatchScriptEventsAreTheirGoTypes drives every op of the batch script
// that appends an event and checks each event's bytes, in the stream and on
// the channel.
func TestBatchScriptEventsAreTheirGoTypes(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{ProgressInterval: time.Nanosecond}) // no throttle
	ctx := context.Background()
	p := listen(t, b)
	item := func(bt *jobs.Batch, i int) *batches.ItemAttempt {
		t.Helper()
		att, out, err := bs.StartItem(ctx, jobs.BatchItemPayload{Batch: bt.ID, Index: i})
		if err != nil || out != batches.ItemStarted {
			t.Fatalf("start item %d: %v, %v", i, out, err)
		}
		return att
	}
	res := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}, Usage: json.RawMessage(`{}`)}

	// Accepted, items finishing (a progress event each: no throttle), the
	// end, a retry round and its end.
	bt := createBatch(t, bs, 3)
	if _, err := item(bt, 0).Complete(ctx, res, 0); err != nil {
		t.Fatal(err)
	}
	if err := item(bt, 1).Fail(ctx, &jobs.Error{Code: "lm_error", Message: "no"}); err != nil {
		t.Fatal(err)
	}
	if _, err := item(bt, 2).Complete(ctx, res, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := bs.Retry(ctx, bt.ID); err != nil || n != 1 {
		t.Fatalf("retry = %d, %v", n, err)
	}
	if _, err := item(bt, 1).Complete(ctx, res, 0); err != nil {
		t.Fatal(err)
	}
	checkBatchEvents(t, bs, p, bt.ID,
		progress(t, jobs.BatchInProgress, jobs.BatchCounts{Total: 3}),
		progress(t, jobs.BatchInProgress, jobs.BatchCounts{Total: 3, Completed: 1}),
		progress(t, jobs.BatchInProgress, jobs.BatchCounts{Total: 3, Completed: 1, Failed: 1}),
		progress(t, jobs.BatchCompleted, jobs.BatchCounts{Total: 3, Completed: 2, Failed: 1}),
		progress(t, jobs.BatchInProgress, jobs.BatchCounts{Total: 3, Completed: 2}),
		progress(t, jobs.BatchCompleted, jobs.BatchCounts{Total: 3, Completed: 3}))

	// Cancelled: cancelling, then the expansion counts the rest.
	bt = createBatch(t, bs, 2)
	if _, err := bs.Cancel(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Expand(ctx, bt.ID, 0); err != nil {
		t.Fatal(err)
	}
	checkBatchEvents(t, bs, p, bt.ID,
		progress(t, jobs.BatchInProgress, jobs.BatchCounts{Total: 2}),
		progress(t, jobs.BatchCancelling, jobs.BatchCounts{Total: 2}),
		progress(t, jobs.BatchCancelling, jobs.BatchCounts{Total: 2}), // the cancel's settle: no throttle here
		progress(t, jobs.BatchCancelled, jobs.BatchCounts{Total: 2, Cancelled: 2}))

	// Expired: its window passed.
	bt = createBatch(t, bs, 1)
	batches.SetClock(bs, func() time.Time { return time.Now().Add(48 * time.Hour) })
	if ok, err := bs.Expire(ctx, bt.ID); err != nil || !ok {
		t.Fatalf("expire = %v, %v", ok, err)
	}
	checkBatchEvents(t, bs, p, bt.ID,
		progress(t, jobs.BatchInProgress, jobs.BatchCounts{Total: 1}),
		progress(t, jobs.BatchExpired, jobs.BatchCounts{Total: 1}))
}
