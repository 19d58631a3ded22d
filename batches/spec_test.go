package batches_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// TestBatchHoldsItsItemsSpecOnce: the batch record holds the batch-wide part
// of its items' spec (program, options, queue) beside its owner, the items
// hash each item's custom_id and inputs, and an item's task its ids alone;
// the item's start puts the spec together.
func TestBatchHoldsItsItemsSpecOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	spec := batchOf("alice")
	spec.Options.NoCache = true
	u, err := bs.BeginUpload(ctx, batches.UploadRequest{Spec: spec, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range []jobs.BatchItem{{CustomID: "a", Inputs: ask("Why 1?")}, {CustomID: "b", Inputs: ask("Why 1.0?")}} {
		if err := u.Add(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	created, err := u.Commit(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	id := created.Batch.ID
	h := b.db.Client.HGetAll(ctx, jobs.BatchKey(id)).Val()
	if want := `{"program":"qa","options":{"no_cache":true},"queue":"batch"}`; h["spec"] != want || h["owner"] != "alice" {
		t.Errorf("batch record: spec %s, owner %q; want %s, alice", h["spec"], h["owner"], want)
	}
	if v, ok := h["no_cache"]; ok {
		t.Errorf("the batch record holds no_cache=%q besides its spec", v)
	}
	if d := cmp.Diff(spec.Options, created.Batch.Spec.Options); d != "" || created.Batch.Spec.Owner != "alice" {
		t.Errorf("the batch's spec: %+v", created.Batch.Spec)
	}
	if got := b.db.Client.HGet(ctx, jobs.BatchItemsKey(id), "1").Val(); got != `{"custom_id":"b","inputs":{"question":"Why 1.0?"}}` {
		t.Errorf("stored item 1 = %s", got)
	}
	if _, err := bs.Expand(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	task, err := asynq.NewInspectorFromRedisClient(b.db.Client).GetTaskInfo(jobs.QueueBatch, jobs.BatchItemTaskID(id, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"batch":"` + id + `","index":1,"round":0,"custom_id":"b"}`; string(task.Payload) != want {
		t.Errorf("item task payload = %s, want %s", task.Payload, want)
	}
	p, err := jobs.ParseBatchItemPayload(task.Payload)
	if err != nil {
		t.Fatal(err)
	}
	att, out, err := bs.StartItem(ctx, p)
	if err != nil || out != batches.ItemStarted {
		t.Fatalf("start = %v %v", out, err)
	}
	want := jobs.Spec{ClientSpec: jobs.ClientSpec{Program: "qa", Inputs: ask("Why 1.0?"), Options: jobs.Options{NoCache: true}},
		ServerSpec: jobs.ServerSpec{Owner: "alice", Queue: jobs.QueueBatch, Batch: &jobs.BatchRef{ID: id, Index: 1, CustomID: "b"}}}
	if d := cmp.Diff(want, att.Spec); d != "" {
		t.Errorf("the item's spec (-want +got):\n%s", d)
	}
	if _, err := att.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}, Usage: json.RawMessage(`{}`)}, 0); err != nil {
		t.Fatal(err)
	}
	lines, err := bs.Results(ctx, id, 1, 2)
	if err != nil || len(lines) != 1 {
		t.Fatalf("results = %v %v", lines, err)
	}
	var r jobs.ItemResult
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil || r.CustomID != "b" || r.Status != jobs.StatusCompleted {
		t.Errorf("result line %s (%v)", lines[0], err)
	}
}

// TestBatchOfRelease114e39c: a batch release 114e39c accepted (no_cache in
// its record, no spec; items {"custom_id", "question"}) starts its items
// with their spec, from the task payload that release wrote.
func TestBatchOfRelease114e39c(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{})
	ctx := context.Background()
	bt := createBatch(t, bs, 1)
	if err := b.db.Client.HDel(ctx, jobs.BatchKey(bt.ID), "spec").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.db.Client.HSet(ctx, jobs.BatchKey(bt.ID), "no_cache", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.db.Client.HSet(ctx, jobs.BatchItemsKey(bt.ID), "0", `{"custom_id":"c0","question":"Old?"}`).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := bs.Get(ctx, bt.ID)
	if err != nil || got.Spec.Program != jobs.ProgramQA || !got.Spec.Options.NoCache || got.Spec.Owner != "alice" {
		t.Fatalf("batch = %+v %v", got, err)
	}
	p, err := jobs.ParseBatchItemPayload([]byte(`{"batch":{"id":"` + bt.ID + `","index":0,"custom_id":"c0"},"owner":"alice","no_cache":true}`))
	if err != nil {
		t.Fatal(err)
	}
	att, out, err := bs.StartItem(ctx, p)
	if err != nil || out != batches.ItemStarted {
		t.Fatalf("start = %v %v", out, err)
	}
	want := jobs.Spec{ClientSpec: jobs.ClientSpec{Program: "qa", Inputs: ask("Old?"), Options: jobs.Options{NoCache: true}},
		ServerSpec: jobs.ServerSpec{Owner: "alice", Queue: jobs.QueueBatch, Batch: &jobs.BatchRef{ID: bt.ID, CustomID: "c0"}}}
	if d := cmp.Diff(want, att.Spec); d != "" {
		t.Errorf("the item's spec (-want +got):\n%s", d)
	}
}
