package redisconn_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// stack is the job path of a deployment on one Redis client: the API's
// submit, a real worker running the QA program against the fake LM.
type stack struct {
	rdb    redis.UniversalClient
	lm     *fakelm.Server
	store  *store.Jobs
	client *store.Client
}

// startStack runs a worker on rdb until the test ends.
func startStack(t *testing.T, rdb redis.UniversalClient) *stack {
	t.Helper()
	lm, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	lm.SetTokensPerSecond(2000)
	lc, err := lmclient.New(lmclient.Config{APIBase: lm.URL(), APIKey: "test", Timeout: 10 * time.Second}, lmclient.Deps{Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	jobStore, err := store.NewJobs(rdb, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{Concurrency: 8, BatchConcurrency: 2, ShutdownTimeout: 5 * time.Second},
		worker.Deps{Redis: rdb, Store: jobStore, Runner: worker.NewProgramRunner(program.NewQA(), lc), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return &stack{rdb: rdb, lm: lm, store: jobStore, client: store.NewClient(rdb, jobStore)}
}

// submit submits a streamed job, retrying a failed call with the same
// idempotency key (as an HTTP client retries a 503) until deadline; it
// returns the job id and how many calls failed.
func (s *stack) submit(ctx context.Context, question string, deadline time.Time) (string, int, error) {
	key := "k-" + jobs.NewJobID()
	failed := 0
	for {
		spec := jobs.Spec{ClientSpec: jobs.QuestionSpec(question), ServerSpec: jobs.ServerSpec{Owner: "e2e"}}
		spec.Options.Stream = true
		sub, err := s.client.Submit(ctx, store.SubmitRequest{Spec: spec, IdempotencyKey: key})
		if err == nil {
			return sub.Job.ID, failed, nil
		}
		failed++
		if time.Now().After(deadline) {
			return "", failed, fmt.Errorf("submit %q: %w", question, err)
		}
		time.Sleep(50 * time.Millisecond) // pacing a retry, not waiting for a condition
	}
}

// waitAll waits, up to within, for every job to end and returns the ones
// that did not complete, with their status. Read errors (a failover in
// progress) are retried.
func (s *stack) waitAll(t *testing.T, ids []string, within time.Duration) []string {
	t.Helper()
	pending := append([]string(nil), ids...)
	var bad []string
	var lastErr error
	defer func() { // on the way out of a failed wait: which jobs, and why
		if len(pending) > 0 {
			t.Logf("jobs not ended: %v (last read error: %v)", pending, lastErr)
		}
	}()
	testwait.Within(t, within, fmt.Sprintf("%d jobs to end", len(ids)), func() bool {
		next := pending[:0]
		for _, id := range pending {
			j, err := s.store.Get(context.Background(), id)
			switch {
			case err != nil:
				lastErr = err
				next = append(next, id)
			case !j.Status.Terminal():
				next = append(next, id)
			case j.Status != jobs.StatusCompleted:
				bad = append(bad, fmt.Sprintf("%s: %s %+v", id, j.Status, j.Error))
			case j.Result == nil || j.Result.Answer("answer") == "":
				bad = append(bad, id+": completed without an answer")
			}
		}
		pending = next
		return len(pending) == 0
	})
	return bad
}

// runJobs submits n jobs and requires every one to complete.
func (s *stack) runJobs(t *testing.T, n int, prefix string) []string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	ids := make([]string, 0, n)
	for i := range n {
		id, _, err := s.submit(context.Background(), fmt.Sprintf("%s question %d?", prefix, i), deadline)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if bad := s.waitAll(t, ids, testwait.Patience); len(bad) > 0 {
		t.Fatalf("jobs did not complete: %v", bad)
	}
	return ids
}

// loadGen submits jobs at a steady pace from a goroutine until stopped.
type loadGen struct {
	mu     sync.Mutex
	ids    []string
	failed int
	err    error
	stop   chan struct{}
	done   chan struct{}
}

func (s *stack) startLoad(every time.Duration, prefix string) *loadGen {
	g := &loadGen{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-g.stop:
				return
			case <-tick.C:
			}
			id, failed, err := s.submit(context.Background(), fmt.Sprintf("%s question %d?", prefix, i), time.Now().Add(30*time.Second))
			g.mu.Lock()
			g.failed += failed
			if err != nil {
				g.err = err
				g.mu.Unlock()
				return
			}
			g.ids = append(g.ids, id)
			g.mu.Unlock()
		}
	}()
	return g
}

func (g *loadGen) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.ids)
}

// waitCount waits until at least n jobs were submitted, failing at once if
// the load generator has stopped.
func (g *loadGen) waitCount(t *testing.T, n int) {
	t.Helper()
	testwait.Until(t, fmt.Sprintf("%d jobs submitted", n), func() bool {
		select {
		case <-g.done:
			t.Fatalf("load generator stopped after %d jobs: %v", g.count(), g.err)
		default:
		}
		return g.count() >= n
	})
}

func (g *loadGen) finish(t *testing.T) ([]string, int) {
	t.Helper()
	close(g.stop)
	<-g.done
	if g.err != nil {
		t.Fatal(g.err)
	}
	return g.ids, g.failed
}
