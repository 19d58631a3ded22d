package faulttest

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/store"
)

// crashEnv gives the victim's LM calls time to be caught in flight (the fake
// LM answers after up to 25 s: LM_TIMEOUT 30 s, and timeouts nesting as
// config requires), and /predict time to outlast a recovery.
var crashEnv = []string{"LM_TIMEOUT=30s", "JOB_TIMEOUT=100s", "PREDICT_TIMEOUT=60s", "SHUTDOWN_TIMEOUT=110s", "WORKER_CONCURRENCY=50"}

// slowFirst is how long the fake LM takes to answer while the victim runs
// the jobs; the test sets it back to fastTTFT once the victim is gone.
const slowFirst, fastTTFT = 25 * time.Second, 100 * time.Millisecond

// ttl is WORKER_LIVENESS_TTL's default, which the fault tests run with.
const ttl = config.DefaultWorkerLivenessTTL

// victimOf is the id of the worker running job id.
func (b *bundle) victimOf(t *testing.T, id string) string {
	t.Helper()
	w := b.db.Client.HGet(ctxFor(t, 10*time.Second), jobs.JobKey(id), "worker").Val()
	if w == "" {
		t.Fatalf("job %s has no worker", id)
	}
	return w
}

// startSurvivor starts a second worker and returns once its liveness
// renewals span twice the TTL: its recoverer may then declare a silent
// worker dead (a fleet's live workers have been up that long already).
func (b *bundle) startSurvivor(t *testing.T, victim string) {
	t.Helper()
	b.startWorker(t)
	ctx := ctxFor(t, time.Minute)
	var id string
	var first float64
	testwait.Within(t, time.Minute, "the survivor to renew its liveness for 2×TTL", func() bool {
		zs, err := b.db.Client.ZRangeWithScores(ctx, jobs.WorkersKey, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range zs {
			if m := z.Member.(string); m != victim && (id == "" || m == id) {
				if id == "" {
					id, first = m, z.Score
				}
				return time.Duration(z.Score-first)*time.Millisecond >= 2*ttl
			}
		}
		return false
	})
}

// recovery is when a killed or stalled worker's job started again and
// completed, from its stored events, and how many were lost-worker
// retries.
type recovery struct {
	restarted, completed time.Time
	lost                 int
}

func (b *bundle) recoveryOf(t *testing.T, id string) recovery {
	t.Helper()
	var r recovery
	for _, e := range b.storedEvents(t, id) {
		switch e.Type {
		case jobs.EventStarted:
			r.restarted = eventTime(e.ID) // the last one
		case jobs.EventCompleted:
			r.completed = eventTime(e.ID)
		case jobs.EventRetrying:
			if strings.Contains(string(e.Data), "was lost") {
				r.lost++
			}
		}
	}
	return r
}

// eventTime is when a stream entry was added.
func eventTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return time.UnixMilli(n)
}

// percentiles are the p50 and p99 of ds (nearest rank).
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[max(0, int(math.Ceil(p*float64(len(s))))-1)] }
	return at(0.50).Round(10 * time.Millisecond), at(0.99).Round(10 * time.Millisecond)
}

// TestWorkerKilled: a worker process dies (SIGKILL) with 20 jobs and a
// /predict call in flight. Its liveness key expires, the survivor's
// recoverer puts the jobs back under new tasks, and they all run again and
// complete, once each, within seconds (asynq's own lease recovery took a
// minute or two); the /predict caller gets its answer, not a 504.
func TestWorkerKilled(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, fakelm.Config{TTFT: slowFirst, TokensPerSecond: 200}, crashEnv...)
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
	predicted := make(chan error, 1)
	go func() {
		var out struct{ Answer string }
		err := b.c.Do(ctx, http.MethodPost, "/predict", map[string]any{"question": "killed worker predict"}, http.StatusOK, &out)
		if err == nil && out.Answer == "" {
			err = errors.New("/predict answered without an answer")
		}
		predicted <- err
	}()
	testwait.Within(t, time.Minute, "every job to run on the victim", func() bool { return b.lm.InFlight() == n+1 })
	victimID := b.victimOf(t, ids[0])
	b.startSurvivor(t, victimID)
	b.lm.SetTTFT(fastTTFT)
	victim.Kill()
	killed := time.Now()

	var restarted, completed []time.Duration
	for _, id := range ids {
		j, err := b.c.WaitEnd(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		evs := b.storedEvents(t, id)
		r := b.recoveryOf(t, id)
		if j.Status != "completed" || j.Attempts != 2 || r.lost != 1 {
			t.Errorf("job %s: %s after %d attempts (%+v), %d lost-worker retries; want completed after 2, one", id, j.Status, j.Attempts, j.Error, r.lost)
		}
		if terminalEvents(evs) != 1 {
			t.Errorf("job %s: %d terminal events, want 1", id, terminalEvents(evs))
		}
		restarted = append(restarted, r.restarted.Sub(killed))
		completed = append(completed, r.completed.Sub(killed))
	}
	if err := <-predicted; err != nil {
		t.Errorf("/predict waiting on the killed worker's job: %v", err)
	}
	if left := b.db.Client.SCard(ctx, jobs.WorkerJobsKey(victimID)).Val(); left != 0 {
		t.Errorf("the victim's index still holds %d jobs", left)
	}
	r50, r99 := percentiles(restarted)
	c50, c99 := percentiles(completed)
	t.Logf("%d jobs, WORKER_LIVENESS_TTL=%v: kill → running again p50 %v p99 %v; kill → completed p50 %v p99 %v", n, ttl, r50, r99, c50, c99)
}

// TestWorkerStalled: a worker process is stopped (SIGSTOP) for 10 s with 20
// streamed jobs in flight, then resumed (SIGCONT). Its jobs run again on the
// survivor; when the stalled worker's LM calls answer, every write of its
// lost attempts is refused. Nothing doubles: one terminal event per job, no
// token of a lost attempt after the job was put back, the tokens counted
// in the owner's budget once, and lm_calls the recorded attempt's.
func TestWorkerStalled(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, fakelm.Config{TTFT: slowFirst, TokensPerSecond: 200}, crashEnv...)
	victim := b.startWorker(t, "LOG_LEVEL=info") // it logs each run it gives up
	ctx := ctxFor(t, 4*time.Minute)

	const n = 20
	ids := make([]string, n)
	for i := range ids {
		id, err := b.c.Submit(ctx, fmt.Sprintf("stalled worker question %d", i), true)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	testwait.Within(t, time.Minute, "every job to run on the victim", func() bool { return b.lm.InFlight() == n })
	victimID := b.victimOf(t, ids[0])
	b.startSurvivor(t, victimID)
	b.lm.SetTTFT(fastTTFT)
	if err := syscall.Kill(victim.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for _, id := range ids {
		if _, err := b.c.WaitEnd(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("all %d jobs completed on the survivor %v after the stop", n, time.Since(stopped).Round(100*time.Millisecond))
	testwait.Within(t, time.Minute, "the stop to have lasted 10s", func() bool { return time.Since(stopped) >= 10*time.Second })
	if err := syscall.Kill(victim.PID(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// The victim's calls answer once slowFirst has passed since they began;
	// wait until it has given every lost run up.
	testwait.Within(t, 2*time.Minute, "the resumed victim's LM calls to end", func() bool { return b.lm.InFlight() == 0 })
	testwait.Within(t, time.Minute, "the resumed victim to give up its runs", func() bool {
		return strings.Count(victim.Output(), "stopped: cancelled, or a newer attempt runs it") >= n
	})

	jobStore, err := store.NewJobs(b.db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var tokens int64
	for _, id := range ids {
		j, err := jobStore.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		evs := b.storedEvents(t, id)
		lost := false
		for _, e := range evs {
			switch {
			case e.Type == jobs.EventRetrying && strings.Contains(string(e.Data), "was lost"):
				lost = true
			case e.Type == jobs.EventToken && lost && strings.Contains(string(e.Data), `"attempt":1,`):
				t.Errorf("job %s: the lost attempt published a token after the job was put back", id)
			}
		}
		if j.Status != jobs.StatusCompleted || j.Attempts != 2 || !lost || terminalEvents(evs) != 1 {
			t.Errorf("job %s: %s after %d attempts, put back %v, %d terminal events; want completed after 2, put back, 1",
				id, j.Status, j.Attempts, lost, terminalEvents(evs))
			continue
		}
		if j.Result.Provenance.LMCalls != 1 {
			t.Errorf("job %s: lm_calls %d, want the recorded attempt's 1", id, j.Result.Provenance.LMCalls)
		}
		tokens += jobs.TotalTokens(j.Result.Usage)
	}
	keys, err := b.db.Client.Keys(ctx, "qa:budget:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var counted int64
	for _, k := range keys {
		v, _ := b.db.Client.Get(ctx, k).Int64()
		counted += v
	}
	if counted != tokens || tokens == 0 {
		t.Errorf("budget counters hold %d tokens, want the completed attempts' %d", counted, tokens)
	}
	if calls := b.lm.Calls(); calls < 2*n {
		t.Errorf("the fake LM answered %d calls, want both attempts' %d: the lost ones are paid", calls, 2*n)
	}
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
