package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// startHookedWorker runs a worker, until the test ends, whose job store
// writes through a client of its own with h installed (its asynq server
// uses b's client, unhooked).
func (b *bundle) startHookedWorker(t *testing.T, h redis.Hook) {
	t.Helper()
	jobStore, err := store.NewJobs(watchedClient(t, b.db, h), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{ShutdownTimeout: 5 * time.Second},
		worker.Deps{Redis: b.db.Client, Store: jobStore, Runner: b.runner, Log: zerolog.New(b.logs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
}

// TestJobRedisCommands counts the worker's commands on a job's record. A
// qa job: one script call to start it and one to complete it (tokens
// between them when streamed, but for the last, which complete publishes),
// no stage write, as before programs had stages. A two-stage job adds one
// stage write per stage. The index of each worker's running jobs (fast
// recovery, store.Workers) adds no call here: the start and settle scripts
// keep it, at one command inside each (start: SADD; settle: SREM), the
// fields they read coming with the script's one HMGET.
func TestJobRedisCommands(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.serveClaims(t)
	// The commands on a job's keys (its record, its events), each script
	// call with its op.
	log := &redistest.CommandLog{ScriptOps: true, Keep: func(_, key string) bool { return strings.HasPrefix(key, "qa:job:") }}
	b.startHookedWorker(t, log)
	run := func(req store.SubmitRequest) []string {
		t.Helper()
		id := b.submit(t, req)
		b.waitCompleted(t, id)
		return log.Take(id)
	}
	const start, complete, stage = "evalsha qa:job:<id> start", "evalsha qa:job:<id> complete", "evalsha qa:job:<id> stage"
	if got, want := run(ask("Why is the sky blue?", "o", jobs.Options{})), []string{start, complete}; !slices.Equal(got, want) {
		t.Errorf("qa job: commands %q, want %q", got, want)
	}
	// Streamed, the tokens come between (how many depends on coalescing:
	// what is left when the run ends goes with complete).
	got := run(ask("Why is the sky green?", "o", jobs.Options{Stream: true}))
	if len(got) < 2 || got[0] != start || got[len(got)-1] != complete ||
		slices.ContainsFunc(got[1:len(got)-1], func(c string) bool { return c != "evalsha qa:job:<id> token" }) {
		t.Errorf("streamed qa job: commands %q, want start, tokens, complete", got)
	}
	claims := claimsJob("Sky: blue.")
	claims.Spec.Options.Stream = false
	if got, want := run(claims), []string{start, stage, stage, complete}; !slices.Equal(got, want) {
		t.Errorf("two-stage job: commands %q, want %q", got, want)
	}
}

// TestTaskKeptOnlyForTheDashboard: a finished job's asynq task goes at once
// (the record holds the result); with store.Config.TaskRetention
// (MONITORING_COMPLETED_TASKS) it is kept as completed, with the recorded
// result for the dashboard.
func TestTaskKeptOnlyForTheDashboard(t *testing.T) {
	t.Parallel()
	for _, retention := range []time.Duration{0, time.Hour} {
		b := setup(t, store.Config{TaskRetention: retention})
		b.startWorker(t, worker.Config{})
		id := b.submit(t, ask("Why is the sky blue?", "o", jobs.Options{}))
		j := b.waitEnd(t, id)
		insp := asynq.NewInspectorFromRedisClient(b.db.Client)
		var info *asynq.TaskInfo
		testwait.Until(t, "asynq to be done with the task", func() bool {
			var err error
			info, err = insp.GetTaskInfo(jobs.QueueInteractive, id)
			return errors.Is(err, asynq.ErrTaskNotFound) || (err == nil && info.State == asynq.TaskStateCompleted)
		})
		switch {
		case retention == 0 && info != nil:
			t.Errorf("no retention: the task is kept, %s", info.State)
		case retention > 0 && info == nil:
			t.Errorf("retention %v: the task is gone", retention)
		case retention > 0:
			var r jobs.Result
			if err := json.Unmarshal(info.Result, &r); err != nil || r.Answer("answer") != j.Result.Answer("answer") {
				t.Errorf("retention %v: the task's result %s (%v), want the record's", retention, info.Result, err)
			}
		}
	}
}
