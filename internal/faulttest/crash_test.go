package faulttest

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// TestWorkerKilled: a worker process dies (SIGKILL) with jobs in flight;
// another worker finishes them. Every accepted job completes, with one
// terminal record and one terminal event each.
//
// asynq recovers a dead worker's tasks once their 30 s lease has expired for
// 30 s, at its recoverer's next run (every minute): about a minute.
func TestWorkerKilled(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits about a minute for asynq to recover the lost leases")
	}
	// About 3 s per answer, so the jobs are in flight at the kill.
	b := setup(t, nil, fakelm.Config{TTFT: 500 * time.Millisecond, TokensPerSecond: 30},
		"LM_TIMEOUT=5s", "JOB_TIMEOUT=20s", "PREDICT_TIMEOUT=20s", "SHUTDOWN_TIMEOUT=25s")
	victim := b.startWorker(t)
	ctx := ctxFor(t, 4*time.Minute)

	const n = 20
	ids := make([]string, n)
	for i := range ids {
		id, err := b.c.Submit(ctx, fmt.Sprintf("killed worker question %d", i), true)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	testwait.Within(t, time.Minute, "every job to run on the victim", func() bool { return b.lm.InFlight() == n })
	victim.Kill()
	killed := time.Now()
	b.startWorker(t)

	for _, id := range ids {
		j, err := b.c.WaitEnd(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		evs := b.storedEvents(t, id)
		if j.Status != "completed" || j.Attempts != 2 {
			t.Errorf("job %s: %s after %d attempts (%+v), want completed after 2", id, j.Status, j.Attempts, j.Error)
		}
		if terminalEvents(evs) != 1 {
			t.Errorf("job %s: %d terminal events, want 1", id, terminalEvents(evs))
		}
	}
	t.Logf("all %d jobs completed %v after the kill", n, time.Since(killed).Round(100*time.Millisecond))
}

// TestRedisRestart: redis-server (append-only, fsync always) is killed and
// started again while clients submit jobs. During the outage the API answers
// 503 with Retry-After and never hangs; it recovers by itself; every job it
// accepted completes; and the worker does not spin on the CPU while Redis is
// away (asynq v0.26 retries a failed dequeue at once unless checked). Jobs
// caught mid-run wait out the outage in their handler (worker/persist.go), so
// they end moments after Redis is back rather than at asynq's lease recovery
// a minute or two later; the log line says how long it took.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	db := redistest.NewServer(t, "--appendonly", "yes", "--appendfsync", "always")
	b := setup(t, db, fakelm.Config{TokensPerSecond: 200},
		"LM_TIMEOUT=5s", "JOB_TIMEOUT=20s", "PREDICT_TIMEOUT=20s", "SHUTDOWN_TIMEOUT=25s")
	w := b.startWorker(t)
	ctx := ctxFor(t, 5*time.Minute)

	var (
		mu         sync.Mutex
		accepted   []string
		statuses   = map[int]int{}
		noRetry    int // 503s without Retry-After
		hangs      int
		stopLoad   atomic.Bool
		loadErrors []error
	)
	// Each request must answer within 10 s: a hang guard, far above any
	// latency, which only a request stuck on a dead connection would reach.
	c := &benchkit.Client{Base: b.c.Base, HTTP: &http.Client{Transport: b.c.HTTP.Transport, Timeout: 10 * time.Second}}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000 && !stopLoad.Load(); i++ {
				id, err := c.Submit(ctx, fmt.Sprintf("restart question %d-%d", g, i), false)
				var se *benchkit.StatusError
				mu.Lock()
				switch {
				case err == nil:
					accepted = append(accepted, id)
					statuses[202]++
				case errors.As(err, &se):
					statuses[se.Status]++
					if se.Status == 503 && se.RetryAfter == "" {
						noRetry++
					}
				default:
					hangs++
					if len(loadErrors) < 5 {
						loadErrors = append(loadErrors, err)
					}
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond) // pace the load, not a wait for a condition
			}
		}()
	}
	acceptedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(accepted) }
	testwait.Within(t, time.Minute, "50 jobs accepted before the outage", func() bool { return acceptedCount() >= 50 })

	db.Server.Stop()
	down := time.Now()
	cpu0, err := w.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	// The API notices: 503 with Retry-After.
	testwait.Within(t, 30*time.Second, "the API to answer 503 during the outage", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return statuses[503] > 0
	})
	time.Sleep(5 * time.Second) // the outage lasts a while: that is the test, not a wait
	cpu1, err := w.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	outage := time.Since(down)
	if err := db.Server.Restart(); err != nil {
		t.Fatal(err)
	}
	used := cpu1 - cpu0
	t.Logf("worker CPU over %v of outage: %v (%.0f%% of one core)", outage.Round(time.Millisecond), used, 100*used.Seconds()/outage.Seconds())
	if used > outage/2 {
		t.Errorf("the worker used %v of CPU over a %v outage: it spins", used, outage)
	}

	before := acceptedCount()
	testwait.Within(t, time.Minute, "the API to accept jobs again by itself", func() bool { return acceptedCount() > before+20 })
	stopLoad.Store(true)
	wg.Wait()

	mu.Lock()
	t.Logf("submissions: %v; %d accepted", statuses, len(accepted))
	if hangs > 0 || noRetry > 0 {
		t.Errorf("%d requests hung or failed in transport (%v); %d 503s lacked Retry-After", hangs, loadErrors, noRetry)
	}
	for s, n := range statuses {
		if s != 202 && s != 503 {
			t.Errorf("%d answers with status %d", n, s)
		}
	}
	ids := append([]string(nil), accepted...)
	mu.Unlock()

	lost := 0
	for _, id := range ids {
		j, err := b.c.WaitEnd(ctx, id)
		switch {
		case err != nil:
			lost++
			t.Errorf("job %s: %v", id, err)
		case j.Status != "completed":
			t.Errorf("job %s: %s %+v", id, j.Status, j.Error)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d accepted jobs lost", lost, len(ids))
	}
	if done, err := w.Exited(); done {
		t.Errorf("the worker exited: %v", err)
	}
	t.Logf("all %d accepted jobs ended %v after Redis came back", len(ids), time.Since(down.Add(outage)).Round(100*time.Millisecond))
}
