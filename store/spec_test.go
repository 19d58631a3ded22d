package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// TestRecordHoldsTheSpecOnce: a job's spec is one field of its record, the
// task's payload is its id alone, and the start hands the spec to the
// attempt. The owner is a field too: an API replica of release 114e39c,
// still serving during a rolling upgrade, finds a job's owner there (or
// answers 404 to it).
func TestRecordHoldsTheSpecOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	req := ask("alice", "Why?")
	req.Spec.Inputs["question"] = "Why is 1 not 1.0?"
	req.Spec.Options = jobs.Options{Stream: true, NoCache: true}
	j := submit(t, b, req)

	h := b.db.Client.HGetAll(ctx, jobs.JobKey(j.ID)).Val()
	want := `{"program":"qa","inputs":{"question":"Why is 1 not 1.0?"},"options":{"stream":true,"no_cache":true},"owner":"alice","queue":"interactive"}`
	if h["spec"] != want {
		t.Errorf("record's spec = %s, want %s", h["spec"], want)
	}
	if h["owner"] != "alice" {
		t.Errorf("record's owner = %q, want alice", h["owner"])
	}
	for _, f := range []string{"question", "queue", "stream", "no_cache"} {
		if v, ok := h[f]; ok {
			t.Errorf("the record holds %s=%q besides its spec", f, v)
		}
	}
	task, err := asynq.NewInspectorFromRedisClient(b.db.Client).GetTaskInfo(jobs.QueueInteractive, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(task.Payload); got != `{"job_id":"`+j.ID+`"}` {
		t.Errorf("task payload = %s, want the job id alone", got)
	}
	a, out, err := b.store.Start(ctx, j.ID, "w", 0)
	if err != nil || out != store.Started {
		t.Fatalf("start = %v %v", out, err)
	}
	if d := cmp.Diff(j.Spec, a.Spec); d != "" {
		t.Errorf("the attempt's spec (-submitted +started):\n%s", d)
	}
}

// TestRecordOfRelease114e39c: a record release 114e39c wrote (question,
// owner, queue, stream and no_cache fields, no spec) reads, starts with its
// spec, and counts its tokens against its owner.
func TestRecordOfRelease114e39c(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{TokenBudgetPerDay: 1000})
	ctx := context.Background()
	const id = "0123456789abcdef0123456789abcdef"
	now := time.Now().UnixMilli()
	if err := b.db.Client.HSet(ctx, jobs.JobKey(id), "id", id, "status", "queued", "attempts", 0, "created_at", now, "updated_at", now,
		"queue", "interactive", "owner", "alice", "question", "How far is the Moon?", "stream", "1", "no_cache", "1").Err(); err != nil {
		t.Fatal(err)
	}
	spec := jobs.Spec{ClientSpec: jobs.QuestionSpec("How far is the Moon?"), ServerSpec: jobs.ServerSpec{Owner: "alice", Queue: jobs.QueueInteractive}}
	spec.Options = jobs.Options{Stream: true, NoCache: true}
	j, err := b.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(spec, j.Spec); d != "" {
		t.Errorf("read (-want +got):\n%s", d)
	}
	a, out, err := b.store.Start(ctx, id, "w", 0)
	if err != nil || out != store.Started {
		t.Fatalf("start = %v %v", out, err)
	}
	if d := cmp.Diff(spec, a.Spec); d != "" {
		t.Errorf("started (-want +got):\n%s", d)
	}
	if _, err := a.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "far"}}, Usage: json.RawMessage(`{"m":{"total_tokens":12}}`)}, 12); err != nil {
		t.Fatal(err)
	}
	if n, err := store.TokensUsed(ctx, b.db.Client, "alice", jobs.UsageDay(time.Now())); err != nil || n != 12 {
		t.Errorf("alice's tokens = %d %v, want 12", n, err)
	}
}
