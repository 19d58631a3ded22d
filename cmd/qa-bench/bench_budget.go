package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// Issue 16's per-job goals for an instant-LM job through POST /v1/jobs +
// GET ?wait=, and its throughput goal against the same-work baseline.
const (
	budgetClients        = 20   // closed-loop clients, as the issue measured
	goalCommandsPerJob   = 40   // Redis commands (INFO commandstats)
	goalAPICPUms         = 0.25 // API CPU per job
	goalWorkerCPUms      = 0.5  // worker CPU per non-streamed job
	goalWorkerCPUStreams = 0.9  // worker CPU per streamed job
	goalSameWorkRatio    = 0.8  // qaqueue jobs/s ÷ the same-work baseline's
)

// The seed workload of issue 16's "Done when": /predict with 200 clients
// against an LM that answers in 200 ms.
const (
	seedClients = 200
	seedLM      = 200 * time.Millisecond
	// fastAPICPUms is the seed's FastAPI deployment's CPU per /predict
	// request at that load, all its processes counted, as issue 16 records
	// it (4.1 ms; qaqueue 1.5 ms then, 0.37×). The Python deployment is not
	// part of this repository and cannot run here, so the bench compares
	// against the recorded figure.
	fastAPICPUms = 4.1
	// goalSeedIdeal and goalSeedCPU are the fraction of the ideal rate
	// (clients ÷ LM time) and of FastAPI's CPU per request.
	goalSeedIdeal = 0.9
	goalSeedCPU   = 0.3
)

// closedLoop runs conc clients for d; each repeats job (submit, then wait
// for it) until d is over. It returns the jobs done and the first error,
// after which that client stops.
func closedLoop(ctx context.Context, conc int, d time.Duration, job func(ctx context.Context, client, i int) error) (int64, error) {
	var (
		done     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	end := time.Now().Add(d)
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
				if err := job(ctx, g, i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return done.Load(), firstErr
}

// submitAndWait is one closed-loop job through a /v1/jobs API (qaqueue's or
// the baseline's): POST, then GET ?wait= until it ends completed. Questions
// are unique to tag, so no LM cache answers.
func submitAndWait(c *benchkit.Client, tag string, stream bool) func(ctx context.Context, g, i int) error {
	return func(ctx context.Context, g, i int) error {
		id, err := c.Submit(ctx, fmt.Sprintf("%s %d-%d: why is the sky blue?", tag, g, i), stream)
		if err != nil {
			return err
		}
		j, err := c.WaitEnd(ctx, id)
		if err != nil {
			return err
		}
		if j.Status != "completed" {
			return fmt.Errorf("job %s %s", id, j.Status)
		}
		return nil
	}
}

// measured is a closed-loop run's jobs, rate and cost per job.
type measured struct {
	n    int64
	rate float64
	cost benchkit.Cost
}

// measure runs job as a closed loop of conc clients for d and charges the
// meter's readings around it to the jobs, less the idle window idle0–idle1
// (pass two equal readings to charge everything).
func measure(ctx context.Context, m *benchkit.Meter, idle0, idle1 benchkit.Reading, conc int, d time.Duration, job func(ctx context.Context, g, i int) error) (measured, error) {
	r0, err := m.Read(ctx)
	if err != nil {
		return measured{}, err
	}
	n, err := closedLoop(ctx, conc, d, job)
	if err != nil {
		return measured{}, err
	}
	r1, err := m.Read(ctx)
	if err != nil {
		return measured{}, err
	}
	return measured{n: n, rate: float64(n) / r1.At.Sub(r0.At).Seconds(), cost: benchkit.CostPerJob(r0, r1, idle0, idle1, int(n))}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// machineWindow is the machine's CPU and this process's from its start:
// with the measured processes' own CPU, it shows what the bench's clients
// and the neighbours took.
type machineWindow struct{ busy, total, self time.Duration }

func startMachineWindow() machineWindow {
	busy, total, _ := benchkit.MachineCPU()
	self, _ := benchkit.CPUTime(os.Getpid())
	return machineWindow{busy, total, self}
}

// since is the machine's busy share (% of all its CPUs) and this process's
// CPU time since w started.
func (w machineWindow) since() (busyPct float64, self time.Duration) {
	now := startMachineWindow()
	return pct(float64(now.busy-w.busy), float64(now.total-w.total)), now.self - w.self
}

// metered is a stack meteredStack started: the API's client, a meter over
// the API, the worker and Redis, and the two processes.
type metered struct {
	client      *benchkit.Client
	meter       *benchkit.Meter
	api, worker *benchkit.Proc
}

// meteredStack starts a Redis, a worker with slots slots and an API on lm,
// both with env, and a meter over the API, the worker and Redis.
func (s *scope) meteredStack(ctx context.Context, lm *benchkit.LM, slots int, env ...string) (*metered, error) {
	return s.meteredStackOf(ctx, s.b.bin, lm, slots, env...)
}

// meteredStackOf is meteredStack with the processes run from the qa binary
// bin.
func (s *scope) meteredStackOf(ctx context.Context, bin string, lm *benchkit.LM, slots int, env ...string) (*metered, error) {
	url, _, err := s.db(ctx)
	if err != nil {
		return nil, err
	}
	st := s.stack(url, lm, append([]string{fmt.Sprintf("WORKER_CONCURRENCY=%d", slots)}, env...)...)
	st.Bin = bin
	wp, wmetrics, err := s.worker(ctx, st)
	if err != nil {
		return nil, err
	}
	ap, c, err := s.api(ctx, st)
	if err != nil {
		return nil, err
	}
	return &metered{client: c, api: ap, worker: wp, meter: &benchkit.Meter{Redis: s.b.redisAddr, Procs: []benchkit.Metered{
		{Name: "api", Proc: ap, Metrics: c.Base + "/metrics"},
		{Name: "worker", Proc: wp, Metrics: wmetrics + "/metrics"},
	}}}, nil
}

// benchBudget: issue 16's per-job budget table. An instant-LM job through
// POST /v1/jobs + GET ?wait=, non-streamed and streamed, 20 closed-loop
// clients: Redis commands per job (by command), API, worker and Redis CPU
// per job, allocations per job per process, each beside its goal.
func benchBudget(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	dur := s.pickDur(15*time.Second, 5*time.Second)
	lm, err := s.lm(fakelm.Config{})
	if err != nil {
		return r, err
	}
	st, err := s.meteredStack(ctx, lm, budgetClients)
	if err != nil {
		return r, err
	}
	c, m := st.client, st.meter
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := closedLoop(ctx, budgetClients, time.Second, submitAndWait(c, tag+" warm", false)); err != nil {
		return r, err
	}
	// The idle window: what the processes cost with no job, charged to
	// nothing.
	idle0, err := m.Read(ctx)
	if err != nil {
		return r, err
	}
	if err := sleepFor(ctx, dur); err != nil {
		return r, err
	}
	idle1, err := m.Read(ctx)
	if err != nil {
		return r, err
	}
	idle := idle1.Commands.Sub(idle0.Commands)
	delete(idle, "info")

	plain, err := measure(ctx, m, idle0, idle1, budgetClients, dur, submitAndWait(c, tag+" plain", false))
	if err != nil {
		return r, err
	}
	streamed, err := measure(ctx, m, idle0, idle1, budgetClients, dur, submitAndWait(c, tag+" streamed", true))
	if err != nil {
		return r, err
	}
	// Bare asynq's commands per task, on another database.
	_, rdb, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	_, bareCmds, err := bareClosedLoop(ctx, s.b.redisAddr, rdb, budgetClients, dur)
	if err != nil {
		return r, err
	}

	budgetRows(r, plain, streamed, bareCmds)
	r.note("%d closed-loop clients (POST /v1/jobs, then GET ?wait= until completed), instant fake LM, unique questions, %v per kind. Every figure is (loaded window − an idle window of the same length) ÷ jobs, so the processes' background loops (heartbeats, pollers, recoverer) are not charged to jobs; the idle window cost %s. Commands are INFO commandstats deltas (script-internal calls included, the bench's INFO left out); CPU is each process's own utime+stime (/proc/<pid>/stat, 10 ms ticks) and Redis's used_cpu_user+sys; allocations are go_memstats_mallocs_total from each process's /metrics.", budgetClients, dur, idleSummary(idle, dur))
	r.note("Redis round trips on the critical path (goal ≤ 7) are not measurable from outside: INFO counts commands, not the pipelines and scripts they travel in. The go-redis hook test of issue 16's budget helper asserts them.")
	r.note("bare asynq: a no-op task enqueued and awaited by %d clients on the same Redis (no HTTP, no LM); commands only, its CPU is this process's.", budgetClients)
	return r, nil
}

// budgetRows adds the per-job rows of the non-streamed and streamed runs,
// each beside its goal.
func budgetRows(r *scenarioResult, plain, streamed measured, bareCmds float64) {
	for _, k := range []struct {
		name      string
		m         measured
		workerCPU float64
	}{{"non-streamed", plain, goalWorkerCPUms}, {"streamed", streamed, goalWorkerCPUStreams}} {
		// The issue sets the commands and API goals for non-streamed jobs.
		// A row's goal is set before the next row: r.row may move the rows.
		plainOnly := func(w *benchRow, goal float64) {
			if k.name == "non-streamed" {
				w.atMost(goal)
			}
		}
		plainOnly(r.row(k.name+": Redis commands per job", benchkit.Total(k.m.cost.Commands), "cmd").base("bare asynq task", bareCmds), goalCommandsPerJob)
		plainOnly(r.row(k.name+": API CPU per job", ms(k.m.cost.CPU["api"]), "ms"), goalAPICPUms)
		r.row(k.name+": worker CPU per job", ms(k.m.cost.CPU["worker"]), "ms").atMost(k.workerCPU)
		r.row(k.name+": Redis CPU per job", ms(k.m.cost.CPU["redis"]), "ms")
		r.row(k.name+": API allocations per job", k.m.cost.Mallocs["api"], "allocs")
		r.row(k.name+": worker allocations per job", k.m.cost.Mallocs["worker"], "allocs")
		r.row(k.name+": jobs/s meanwhile", k.m.rate, "jobs/s")
		r.note("%s, Redis calls per job, most first: %s.", k.name, benchkit.Top(k.m.cost.Commands, 10))
		r.detail(k.name+"_commands_per_job", k.m.cost.Commands)
	}
}

// idleSummary is an idle window's Redis calls per second, most first.
func idleSummary(idle benchkit.CommandStats, d time.Duration) string {
	per := map[string]float64{}
	for name, c := range idle {
		per[name] = float64(c)
	}
	return fmt.Sprintf("%.1f Redis calls/s (calls in the window: %s)", benchkit.Total(per)/d.Seconds(), benchkit.Top(per, 5))
}

// sameWork is the same-work baseline's two processes.
type sameWork struct {
	api, worker          *benchkit.Proc
	client               *benchkit.Client
	apiMetrics, wMetrics string
}

// sameWork starts the same-work baseline (qa-bench samework worker and
// api) on redisURL and lm, with conc worker slots.
func (s *scope) sameWork(ctx context.Context, redisURL string, lm *benchkit.LM, conc int) (*sameWork, error) {
	if s.b.self == "" {
		return nil, fmt.Errorf("same-work baseline: qa-bench cannot find its own executable")
	}
	start := func(role string, args ...string) (*benchkit.Proc, string, error) {
		port, err := benchkit.FreePort()
		if err != nil {
			return nil, "", err
		}
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		args = append([]string{sameworkCommand, role, "-redis", redisURL, "-addr", "127.0.0.1:" + strconv.Itoa(port)}, args...)
		p, err := benchkit.StartProc("samework "+role, s.b.self, s.b.dir, []string{"HOME=" + s.b.dir, "GIN_MODE=release"}, args...)
		if err != nil {
			return nil, "", err
		}
		s.onClose(func() { _ = p.Stop(30 * time.Second) })
		if err := benchkit.WaitReady(ctx, p, base+"/readyz", 60*time.Second); err != nil {
			return nil, "", err
		}
		return p, base, nil
	}
	w, wbase, err := start("worker", "-lm", lm.URL(), "-concurrency", strconv.Itoa(conc))
	if err != nil {
		return nil, err
	}
	a, abase, err := start("api")
	if err != nil {
		return nil, err
	}
	c := benchkit.NewClient(abase, 2048)
	s.onClose(c.HTTP.CloseIdleConnections)
	return &sameWork{api: a, worker: w, client: c, apiMetrics: abase + "/metrics", wMetrics: wbase + "/metrics"}, nil
}

// benchThroughput: jobs/s end to end through the HTTP API with an instant
// LM, beside the same-work baseline (issue 16 item 4) and bare asynq, each
// as a closed loop of the same clients with the same worker slots.
func benchThroughput(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	conc := budgetClients
	dur := s.pickDur(15*time.Second, 5*time.Second)
	lm, err := s.lm(fakelm.Config{})
	if err != nil {
		return r, err
	}
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)

	// qaqueue.
	st, err := s.meteredStack(ctx, lm, conc)
	if err != nil {
		return r, err
	}
	c, m := st.client, st.meter
	if _, err := closedLoop(ctx, conc, time.Second, submitAndWait(c, tag+" warm", false)); err != nil {
		return r, err
	}
	none, err := m.Read(ctx) // no idle window: charge everything
	if err != nil {
		return r, err
	}
	ours, err := measure(ctx, m, none, none, conc, dur, submitAndWait(c, tag+" qaqueue", false))
	if err != nil {
		return r, err
	}
	// Stopped, so that their idle loops do not count against the others.
	_ = st.api.Stop(30 * time.Second)
	_ = st.worker.Stop(30 * time.Second)

	// The same-work baseline, on another database, the same LM.
	url, _, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	sw, err := s.sameWork(ctx, url, lm, conc)
	if err != nil {
		return r, err
	}
	sm := &benchkit.Meter{Redis: s.b.redisAddr, Procs: []benchkit.Metered{
		{Name: "api", Proc: sw.api, Metrics: sw.apiMetrics},
		{Name: "worker", Proc: sw.worker, Metrics: sw.wMetrics},
	}}
	if _, err := closedLoop(ctx, conc, time.Second, submitAndWait(sw.client, tag+" warm", false)); err != nil {
		return r, fmt.Errorf("same-work baseline: %w", err)
	}
	if none, err = sm.Read(ctx); err != nil {
		return r, err
	}
	base, err := measure(ctx, sm, none, none, conc, dur, submitAndWait(sw.client, tag+" samework", false))
	if err != nil {
		return r, fmt.Errorf("same-work baseline: %w", err)
	}
	_ = sw.api.Stop(30 * time.Second)
	_ = sw.worker.Stop(30 * time.Second)

	// Bare asynq, on another database.
	_, rdb, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	bare, bareCmds, err := bareClosedLoop(ctx, s.b.redisAddr, rdb, conc, dur)
	if err != nil {
		return r, err
	}

	cpu := func(c benchkit.Cost) float64 { return ms(c.CPU["api"] + c.CPU["worker"]) }
	r.row("qaqueue jobs/s", ours.rate, "jobs/s").base("same-work baseline", base.rate)
	r.row("qaqueue ÷ same-work baseline", ours.rate/base.rate, "×").atLeast(goalSameWorkRatio)
	r.row("same-work baseline jobs/s", base.rate, "jobs/s").base("bare asynq, no-op task", bare)
	r.row("qaqueue % of bare asynq", pct(ours.rate, bare), "%")
	r.row("Redis commands per job", benchkit.Total(ours.cost.Commands), "cmd").base("same-work baseline", benchkit.Total(base.cost.Commands))
	r.row("same-work baseline: Redis commands per job", benchkit.Total(base.cost.Commands), "cmd").base("bare asynq", bareCmds)
	r.row("CPU per job, API + worker", cpu(ours.cost), "ms").base("same-work baseline", cpu(base.cost))
	r.row("CPU per job, API", ms(ours.cost.CPU["api"]), "ms").base("same-work baseline", ms(base.cost.CPU["api"]))
	r.row("CPU per job, worker", ms(ours.cost.CPU["worker"]), "ms").base("same-work baseline", ms(base.cost.CPU["worker"]))
	r.row("CPU per job, Redis", ms(ours.cost.CPU["redis"]), "ms").base("same-work baseline", ms(base.cost.CPU["redis"]))
	r.note("%d clients, each a closed loop for %v: POST /v1/jobs, then GET ?wait= until completed, non-streamed, instant fake LM (the same one for both), %d worker slots each. The same-work baseline (internal/benchkit/samework, run as `qa-bench samework api|worker` processes) is gin → asynq (5 ms polling) → the QA program's prompt through openai-go → the result JSON in one key + a pub/sub notice → a long-poll GET that subscribes, reads the key and waits for the notice. Bare asynq: a no-op task, no HTTP, no LM, in this process.", conc, dur, conc)
	r.note("Per-job figures here charge the whole window to the jobs (no idle subtraction: a busy asynq server does not idle-poll); the budget scenario subtracts an idle window.")
	r.note("Redis calls per job: qaqueue %s; same-work baseline %s.", benchkit.Top(ours.cost.Commands, 10), benchkit.Top(base.cost.Commands, 10))
	return r, nil
}

// benchSeed: the seed workload of issue 16's "Done when": POST /predict
// from 200 closed-loop clients against an LM answering in 200 ms, its rate
// against the ideal (200 ÷ 200 ms) and its CPU per request, every qaqueue
// process and Redis counted, against the FastAPI deployment's.
func benchSeed(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	dur := s.pickDur(20*time.Second, 8*time.Second)
	lm, err := s.lm(fakelm.Config{TTFT: seedLM})
	if err != nil {
		return r, err
	}
	st, err := s.meteredStack(ctx, lm, seedClients)
	if err != nil {
		return r, err
	}
	c, m := st.client, st.meter
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	var (
		mu  sync.Mutex
		lat []time.Duration
	)
	predict := func(tag string, keep bool) func(ctx context.Context, g, i int) error {
		return func(ctx context.Context, g, i int) error {
			t0 := time.Now()
			err := c.Do(ctx, http.MethodPost, "/predict", map[string]any{"question": fmt.Sprintf("%s %d-%d: why is the sky blue?", tag, g, i)}, http.StatusOK, nil)
			if err == nil && keep {
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
			return err
		}
	}
	if _, err := closedLoop(ctx, seedClients, 2*time.Second, predict(tag+" warm", false)); err != nil {
		return r, err
	}
	none, err := m.Read(ctx)
	if err != nil {
		return r, err
	}
	mw := startMachineWindow()
	got, err := measure(ctx, m, none, none, seedClients, dur, predict(tag, true))
	if err != nil {
		return r, err
	}
	busyPct, self := mw.since()
	ideal := float64(seedClients) / seedLM.Seconds()
	all := ms(got.cost.CPU["api"] + got.cost.CPU["worker"] + got.cost.CPU["redis"])
	p := benchkit.Summarize(lat)
	r.row("/predict requests/s", got.rate, "req/s").base("ideal, clients ÷ LM time", ideal)
	r.row("fraction of the ideal rate", got.rate/ideal, "×").atLeast(goalSeedIdeal)
	r.row("CPU per request, API + worker + Redis", all, "ms").base("FastAPI deployment, recorded", fastAPICPUms)
	r.row("CPU per request ÷ FastAPI's", all/fastAPICPUms, "×").atMost(goalSeedCPU)
	r.row("CPU per request, API", ms(got.cost.CPU["api"]), "ms")
	r.row("CPU per request, worker", ms(got.cost.CPU["worker"]), "ms")
	r.row("CPU per request, Redis", ms(got.cost.CPU["redis"]), "ms")
	r.row("CPU per request, the bench (clients, fake LM)", ms(self)/float64(max(got.n, 1)), "ms")
	r.row("machine CPU busy, all processes and neighbours", busyPct, "% of all CPUs")
	r.row("/predict p50 over the LM", benchkit.MS(p.P50-seedLM), "ms").base("LM time", benchkit.MS(seedLM))
	r.row("/predict p99 over the LM", benchkit.MS(p.P99-seedLM), "ms")
	r.note("%d closed-loop clients POST /predict for %v (unique questions, no cache hits) against a fake LM that answers in %v; one worker with WORKER_CONCURRENCY=%d, one API. CPU is every process's own (utime+stime) and Redis's used_cpu_user+sys over the window ÷ requests. FastAPI's %.1f ms is the figure issue 16 records for the seed's Python deployment at this load (it cannot run here: no Python stack in the repository or on this machine).", seedClients, dur, seedLM, seedClients, fastAPICPUms)
	return r, nil
}
