package worker_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
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
// between them when streamed), no stage write, as before programs had
// stages. A two-stage job adds one stage write per stage. The index of
// each worker's running jobs (fast recovery, store.Workers) adds no command
// here: the start and settle scripts keep it, at two commands inside each
// (start: HGET task, SADD; settle: HGET worker, SREM).
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
	// Streamed, the tokens come between (how many depends on coalescing).
	got := run(ask("Why is the sky green?", "o", jobs.Options{Stream: true}))
	if len(got) < 3 || got[0] != start || got[len(got)-1] != complete ||
		slices.ContainsFunc(got[1:len(got)-1], func(c string) bool { return c != "evalsha qa:job:<id> token" }) {
		t.Errorf("streamed qa job: commands %q, want start, tokens, complete", got)
	}
	claims := claimsJob("Sky: blue.")
	claims.Spec.Options.Stream = false
	if got, want := run(claims), []string{start, stage, stage, complete}; !slices.Equal(got, want) {
		t.Errorf("two-stage job: commands %q, want %q", got, want)
	}
}
