package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// indexed reports whether job id is in worker's index of running jobs.
func indexed(t *testing.T, b *bundle, worker, id string) bool {
	t.Helper()
	in, err := b.db.Client.SIsMember(context.Background(), jobs.WorkerJobsKey(worker), id).Result()
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestStartRefusesAForeignTask: once a job's record names a task, a start
// from any other task is refused and writes nothing.
func TestStartRefusesAForeignTask(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	j := submit(t, b, ask("", "q"))
	if _, out, err := b.store.StartTask(ctx, j.ID, j.ID+".1", "w", 0); err != nil || out != store.Foreign {
		t.Fatalf("start from another task: %v, %v; want Foreign", out, err)
	}
	if got := get(t, b, j.ID); got.Status != jobs.StatusQueued || got.Attempts != 0 || indexed(t, b, "w", j.ID) {
		t.Fatalf("after a refused start: %+v, indexed %v", got, indexed(t, b, "w", j.ID))
	}
	checkEventTypes(t, events(t, b, j.ID), jobs.EventQueued)
	// Submit's task is the job's own id.
	if a, out, err := b.store.StartTask(ctx, j.ID, j.ID, "w", 0); err != nil || out != store.Started || a.Number != 1 {
		t.Fatalf("start from the job's task: %v, %v", out, err)
	}
}

// TestIndexFollowsAttempts: a start adds the job to its worker's index, and
// every write that ends or puts back the attempt removes it.
func TestIndexFollowsAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{MaxAttempts: 2})
	ctx := context.Background()
	reason := &jobs.Error{Code: "lm_error", Message: "boom"}
	for name, end := range map[string]func(a *store.Attempt, id string) error{
		"complete": func(a *store.Attempt, _ string) error {
			_, err := a.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}}, 0)
			return err
		},
		"fail":   func(a *store.Attempt, _ string) error { return a.Fail(ctx, reason) },
		"retry":  func(a *store.Attempt, _ string) error { return a.Retry(ctx, reason, 0) },
		"defer":  func(a *store.Attempt, _ string) error { return a.Defer(ctx, reason, 0) },
		"cancel": func(_ *store.Attempt, id string) error { _, err := b.store.Cancel(ctx, id); return err },
		// The attempt was lost and asynq ran the task again on another
		// worker: the job leaves the lost worker's index for the new one's.
		"start elsewhere": func(_ *store.Attempt, id string) error {
			startOn(t, b, id, "w1")
			if !indexed(t, b, "w1", id) {
				t.Errorf("start elsewhere: not in w1's index")
			}
			return nil
		},
		// The last attempt was lost: the next start gives up.
		"give up": func(_ *store.Attempt, id string) error {
			startOn(t, b, id, "w1")
			_, out, err := b.store.Start(ctx, id, "w2", 0)
			if out != store.Ended {
				t.Errorf("give up: start %v, want Ended", out)
			}
			return err
		},
	} {
		j := submit(t, b, ask("", name))
		a := startOn(t, b, j.ID, "w")
		if !indexed(t, b, "w", j.ID) {
			t.Fatalf("%s: not in the index after its start", name)
		}
		if err := end(a, j.ID); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if indexed(t, b, "w", j.ID) {
			t.Errorf("%s: still in the index", name)
		}
	}
	if n := b.db.Client.SCard(ctx, jobs.WorkerJobsKey("w2")).Val(); n != 0 {
		t.Errorf("w2's index holds %d jobs, want 0: its start gave up", n)
	}
}

// TestRecoverPutsBackARunningJob: a dead worker's running job gets a new
// task, atomically with its record; the lost attempt's writes are refused
// from then on, and the old task's start too. The job completes once, its
// tokens counted once.
func TestRecoverPutsBackARunningJob(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	workers := store.NewWorkers(b.store, time.Second)
	j := submit(t, b, streamed(ask("alice", "q")))
	lost := startOn(t, b, j.ID, "dead")
	if err := lost.Token(ctx, "answer", "partial"); err != nil {
		t.Fatal(err)
	}

	ids, err := workers.Recover(ctx, "dead")
	if err != nil || !slices.Equal(ids, []string{j.ID}) {
		t.Fatalf("recover: %v, %v; want [%s]", ids, err, j.ID)
	}
	rec := b.db.Client.HMGet(ctx, jobs.JobKey(j.ID), "status", "task", "recoveries", "attempts").Val()
	if !slices.Equal(rec, []any{"retrying", j.ID + ".1", "1", "1"}) {
		t.Fatalf("record after recovery: %v", rec)
	}
	evs := events(t, b, j.ID)
	checkEventTypes(t, evs, jobs.EventQueued, jobs.EventStarted, jobs.EventToken, jobs.EventRetrying)
	if !strings.Contains(string(evs[3].Data), `"reason":"worker dead was lost`) || !strings.Contains(string(evs[3].Data), `"attempt":1`) {
		t.Errorf("retrying event = %s", evs[3].Data)
	}
	for _, key := range []string{jobs.WorkerJobsKey("dead"), jobs.RecoveringKey} {
		if n := b.db.Client.SCard(ctx, key).Val(); n != 0 {
			t.Errorf("%s holds %d jobs, want 0", key, n)
		}
	}
	info, err := asynq.NewInspectorFromRedisClient(b.db.Client).GetTaskInfo(jobs.QueueInteractive, j.ID+".1")
	if err != nil || info.State != asynq.TaskStatePending || info.Type != jobs.TaskTypePredict {
		t.Fatalf("new task: %+v, %v; want it pending", info, err)
	}

	// The lost attempt, if its worker was only stalled, is refused.
	stale := func(when string) {
		t.Helper()
		r := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "stale"}}}
		if _, err := lost.Complete(ctx, r, 1000); !errors.Is(err, store.ErrStale) {
			t.Errorf("stale complete %s: %v", when, err)
		}
		if err := lost.Fail(ctx, &jobs.Error{Code: "x", Message: "x"}); !errors.Is(err, store.ErrStale) {
			t.Errorf("stale fail %s: %v", when, err)
		}
		if err := lost.Token(ctx, "answer", " more"); !errors.Is(err, store.ErrStale) {
			t.Errorf("stale token %s: %v", when, err)
		}
		if err := lost.Checkpoint(ctx, 0, checkpoint("s", "answer", "x", 1)); !errors.Is(err, store.ErrStale) {
			t.Errorf("stale checkpoint %s: %v", when, err)
		}
	}
	stale("before the new start")
	// asynq's recoverer retries the old task a minute later: refused.
	if _, out, err := b.store.StartTask(ctx, j.ID, j.ID, "late", 0); err != nil || out != store.Foreign {
		t.Fatalf("old task's start: %v, %v; want Foreign", out, err)
	}
	again, out, err := b.store.StartTask(ctx, j.ID, j.ID+".1", "live", 0)
	if err != nil || out != store.Started || again.Number != 2 {
		t.Fatalf("new task's start: %v, %v", out, err)
	}
	stale("while the new attempt runs")
	if _, err := again.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "fresh"}}}, 7); err != nil {
		t.Fatal(err)
	}
	if got := get(t, b, j.ID); got.Status != jobs.StatusCompleted || got.Result.Answer("answer") != "fresh" {
		t.Fatalf("record = %+v", got)
	}
	if used, err := store.TokensUsed(ctx, b.db.Client, "alice", jobs.UsageDay(time.Now())); err != nil || used != 7 {
		t.Fatalf("tokens used = %d, %v; want 7", used, err)
	}
	checkEventTypes(t, events(t, b, j.ID), jobs.EventQueued, jobs.EventStarted, jobs.EventToken, jobs.EventRetrying, jobs.EventStarted, jobs.EventCompleted)
}

// TestRecoverSkipsSettledJobs: a job that ended, or started elsewhere,
// between the index read and the recover op is only dropped from the dead
// worker's index.
func TestRecoverSkipsSettledJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	workers := store.NewWorkers(b.store, time.Second)
	done := submit(t, b, ask("", "done"))
	a := startOn(t, b, done.ID, "dead")
	if _, err := a.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}}, 0); err != nil {
		t.Fatal(err)
	}
	moved := submit(t, b, ask("", "moved"))
	startOn(t, b, moved.ID, "dead")
	startOn(t, b, moved.ID, "other") // asynq's own recovery got there first
	// As if the index still held them (a race with the settle).
	b.db.Client.SAdd(ctx, jobs.WorkerJobsKey("dead"), done.ID, moved.ID, "gone")

	ids, err := workers.Recover(ctx, "dead")
	if err != nil || len(ids) != 0 {
		t.Fatalf("recover: %v, %v; want none", ids, err)
	}
	if n := b.db.Client.SCard(ctx, jobs.WorkerJobsKey("dead")).Val(); n != 0 {
		t.Errorf("dead worker's index holds %d jobs, want 0", n)
	}
	if got := get(t, b, done.ID); got.Status != jobs.StatusCompleted {
		t.Errorf("done job: %s", got.Status)
	}
	if got := get(t, b, moved.ID); got.Status != jobs.StatusRunning || got.Attempts != 2 {
		t.Errorf("moved job: %s, attempt %d", got.Status, got.Attempts)
	}
	checkEventTypes(t, events(t, b, moved.ID), jobs.EventQueued, jobs.EventStarted, jobs.EventStarted)
}

// TestRedriveEnqueuesWhatARecovererLeft: a recoverer that died between the
// record's change and the enqueue left the job in the recovering set; the
// next one enqueues its task.
func TestRedriveEnqueuesWhatARecovererLeft(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	workers := store.NewWorkers(b.store, time.Second)
	insp := asynq.NewInspectorFromRedisClient(b.db.Client)
	j := submit(t, b, ask("", "q"))
	startOn(t, b, j.ID, "dead")
	if _, err := workers.Recover(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	// Undo the enqueue: the state a recoverer killed after the script leaves.
	if err := insp.DeleteTask(jobs.QueueInteractive, j.ID+".1"); err != nil {
		t.Fatal(err)
	}
	b.db.Client.SAdd(ctx, jobs.RecoveringKey, j.ID)
	if n, err := workers.Redrive(ctx); err != nil || n != 1 {
		t.Fatalf("redrive: %d, %v; want 1", n, err)
	}
	if _, err := insp.GetTaskInfo(jobs.QueueInteractive, j.ID+".1"); err != nil {
		t.Fatalf("task not enqueued again: %v", err)
	}
	// A second pass finds nothing left; an enqueued task is not doubled.
	b.db.Client.SAdd(ctx, jobs.RecoveringKey, j.ID)
	if n, err := workers.Redrive(ctx); err != nil || n != 1 || b.db.Client.SCard(ctx, jobs.RecoveringKey).Val() != 0 {
		t.Fatalf("redrive over an enqueued task: %d, %v", n, err)
	}
	if n, err := workers.Redrive(ctx); err != nil || n != 0 {
		t.Fatalf("empty redrive: %d, %v", n, err)
	}
}

// TestDeadWorkers: a registered worker whose alive key expired is dead; a
// cleanly stopped one with an empty index is forgotten at once.
func TestDeadWorkers(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	workers := store.NewWorkers(b.store, time.Second)
	for _, id := range []string{"a", "b", "c"} {
		if err := workers.Renew(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if dead, err := workers.Dead(ctx); err != nil || len(dead) != 0 {
		t.Fatalf("dead = %v, %v; want none", dead, err)
	}
	b.db.Client.Del(ctx, jobs.WorkerAliveKey("b")) // as if it expired
	if gone, err := workers.Leave(ctx, "c"); err != nil || !gone {
		t.Fatalf("leave c: %v, %v", gone, err)
	}
	j := submit(t, b, ask("", "q"))
	startOn(t, b, j.ID, "a")
	if gone, err := workers.Leave(ctx, "a"); err != nil || gone {
		t.Fatalf("leave a with a job running: %v, %v; want its key kept", gone, err)
	}
	if dead, err := workers.Dead(ctx); err != nil || !slices.Equal(dead, []string{"b"}) {
		t.Fatalf("dead = %v, %v; want [b]", dead, err)
	}
}

// TestCancelDeletesTheCurrentTask: a recovered job's cancel removes its new
// task from the queue, not the old one's id.
func TestCancelDeletesTheCurrentTask(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	insp := asynq.NewInspectorFromRedisClient(b.db.Client)
	j := submit(t, b, ask("", "q"))
	startOn(t, b, j.ID, "dead")
	if _, err := store.NewWorkers(b.store, time.Second).Recover(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := insp.GetTaskInfo(jobs.QueueInteractive, j.ID+".1"); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Fatalf("new task after cancel: %v, want it deleted", err)
	}
}
