package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// jobCommands is a go-redis hook that records the commands touching a
// job's keys (its record, its events), each as its name and first key
// with the job's id elided; for a script, its op too.
type jobCommands struct {
	mu   sync.Mutex
	cmds []string
}

func (l *jobCommands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *jobCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.add(cmd)
		return next(ctx, cmd)
	}
}

func (l *jobCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			l.add(cmd)
		}
		return next(ctx, cmds)
	}
}

func (l *jobCommands) add(cmd redis.Cmder) {
	name, args := cmd.Name(), cmd.Args()
	var key string
	switch {
	case (name == "evalsha" || name == "eval") && len(args) > 3:
		key = fmt.Sprint(args[3])
		if len(args) > 3+4 { // the record script's op follows its 4 keys
			key += " " + fmt.Sprint(args[3+4])
		}
		name = "evalsha"
	case len(args) > 1:
		key = fmt.Sprint(args[1])
	}
	if !strings.HasPrefix(key, "qa:job:") {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cmds = append(l.cmds, name+" "+key)
}

func (l *jobCommands) take(id string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.cmds))
	for i, c := range l.cmds {
		out[i] = strings.ReplaceAll(c, id, "<id>")
	}
	l.cmds = nil
	return out
}

// TestJobRedisCommands counts the worker's commands on a job's record. A
// qa job: one script call to start it and one to complete it (tokens
// between them when streamed), no stage write, as before programs had
// stages. A two-stage job adds one stage write per stage.
func TestJobRedisCommands(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.serveClaims(t)
	log := &jobCommands{}
	client := redis.NewClient(b.db.Client.Options())
	client.AddHook(log)
	t.Cleanup(func() { _ = client.Close() })
	jobStore, err := store.NewJobs(client, store.Config{})
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
	run := func(req store.SubmitRequest) []string {
		t.Helper()
		id := b.submit(t, req)
		if j := b.waitEnd(t, id); j.Status != jobs.StatusCompleted {
			t.Fatalf("job = %s %+v", j.Status, j.Error)
		}
		return log.take(id)
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
