package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/redis/go-redis/v9"
)

// cpuMeter measures a process's share of one core over a window.
type cpuMeter struct {
	p    *benchkit.Proc
	cpu0 time.Duration
	t0   time.Time
}

func meterCPU(p *benchkit.Proc) *cpuMeter {
	c, _ := p.CPUTime()
	return &cpuMeter{p: p, cpu0: c, t0: time.Now()}
}

// percent is the CPU used since the meter started, in % of one core.
func (m *cpuMeter) percent() float64 {
	return pct(m.used().Seconds(), time.Since(m.t0).Seconds())
}

// used is the CPU time used since the meter started.
func (m *cpuMeter) used() time.Duration {
	c, _ := m.p.CPUTime()
	return c - m.cpu0
}

// bareClosedLoop runs an asynq server with a no-op handler and conc clients
// that each enqueue a task and wait for its handler, for d.
func bareClosedLoop(ctx context.Context, addr string, rdb *redis.Client, conc int, d time.Duration) (perSecond, cmdsPerTask float64, err error) {
	srvRDB := redis.NewClient(rdb.Options())
	defer srvRDB.Close()
	var waiters sync.Map
	srv := asynq.NewServerFromRedisClient(srvRDB, asynq.Config{
		Concurrency: conc, Queues: map[string]int{"bare": 1}, TaskCheckInterval: 5 * time.Millisecond, LogLevel: asynq.FatalLevel,
	})
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		if ch, ok := waiters.LoadAndDelete(id); ok {
			close(ch.(chan struct{}))
		}
		return nil
	})); err != nil {
		return 0, 0, err
	}
	defer srv.Shutdown()
	client := asynq.NewClientFromRedisClient(rdb)
	run := func(d time.Duration) (int64, error) {
		var done atomic.Int64
		var firstErr error
		var once sync.Once
		var wg sync.WaitGroup
		end := time.Now().Add(d)
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) && ctx.Err() == nil {
					var b [16]byte
					_, _ = rand.Read(b[:])
					id := hex.EncodeToString(b[:])
					ch := make(chan struct{})
					waiters.Store(id, ch)
					_, err := client.EnqueueContext(ctx, asynq.NewTask("bare", nil), asynq.Queue("bare"), asynq.TaskID(id))
					if err == nil {
						select {
						case <-ch:
						case <-time.After(30 * time.Second):
							err = errors.New("bare asynq task not run within 30s")
						}
					}
					if err != nil {
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
	if _, err := run(time.Second); err != nil {
		return 0, 0, err
	}
	cmd0, _ := benchkit.TotalCommands(ctx, addr)
	t0 := time.Now()
	n, err := run(d)
	if err != nil {
		return 0, 0, err
	}
	perSecond = float64(n) / time.Since(t0).Seconds()
	cmd1, _ := benchkit.TotalCommands(ctx, addr)
	return perSecond, float64(cmd1-cmd0) / float64(max(n, 1)), nil
}

// benchConcurrency: one worker process, N slots, every job a streamed LM
// call of 2 s: does it keep N calls in flight (ideal N/2 jobs/s)?
func benchConcurrency(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	n := s.pick(2000, 200)
	window := s.pickDur(20*time.Second, 8*time.Second)
	const call = 2 * time.Second
	// The worker holds N LM connections and ~N Redis connections; this
	// process holds the LM's N server ends.
	if lim := fileLimit(); lim > 0 && uint64(2*n+1000) > lim {
		scaled := max(10, int(lim-1000)/2)
		r.note("open-file limit %d: N scaled from %d to %d", lim, n, scaled)
		n = scaled
	}
	url, rdb, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	lm, err := s.lm(fakelm.Config{TTFT: call})
	if err != nil {
		return r, err
	}
	pins, err := s.pin(ctx, r)
	if err != nil {
		return r, err
	}
	st := s.stack(url, lm, fmt.Sprintf("WORKER_CONCURRENCY=%d", n), "INTERACTIVE_MAX_WAIT=600s")
	st.Pins, st.CPUs = pins, pins.Measured
	wp, _, err := s.worker(ctx, st)
	if err != nil {
		return r, err
	}
	idleRSS, _ := wp.RSS()
	jc, _, err := jobsClient(rdb)
	if err != nil {
		return r, err
	}
	// Keep about N jobs pending, so the worker never runs dry.
	fctx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	var fed atomic.Int64
	var feedErr atomic.Value
	var fwg sync.WaitGroup
	pending := "asynq:{" + jobs.QueueInteractive + "}:pending"
	for g := range 8 {
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			for i := 0; fctx.Err() == nil; i++ {
				if l, err := rdb.LLen(fctx, pending).Result(); err == nil && l >= int64(n) {
					_ = sleepFor(fctx, 20*time.Millisecond)
					continue
				}
				if _, err := jc.Submit(fctx, ask(fmt.Sprintf("concurrency %d-%d", g, i), jobs.QueueInteractive, jobs.Options{Stream: true})); err != nil {
					if fctx.Err() == nil {
						feedErr.Store(err)
					}
					return
				}
				fed.Add(1)
			}
		}()
	}
	// Warm up: wait until the calls in flight stop rising (or 3 call times).
	warm := time.Now().Add(3 * call)
	for time.Now().Before(warm) && lm.InFlight() < int64(n) && ctx.Err() == nil {
		_ = sleepFor(ctx, 100*time.Millisecond)
	}
	_ = sleepFor(ctx, call)
	lm.ResetMax()
	cpu := meterCPU(wp)
	rest0, restErr := restCPU(ctx, s)
	cores0, coresErr := benchkit.CoreStats()
	wait0, waitErr := benchkit.RunQueueWait(wp.PID())
	t0 := time.Now()
	var inflight, queued []float64
	var rss int64
	for time.Since(t0) < window && ctx.Err() == nil {
		_ = sleepFor(ctx, 250*time.Millisecond)
		inflight = append(inflight, float64(lm.InFlight()))
		if l, err := rdb.LLen(ctx, pending).Result(); err == nil {
			queued = append(queued, float64(l))
		}
		if v, err := wp.RSS(); err == nil {
			rss = max(rss, v)
		}
	}
	t1 := time.Now()
	elapsed := t1.Sub(t0)
	cpuPct, cpuUsed := cpu.percent(), cpu.used()
	rest1, restErr1 := restCPU(ctx, s)
	cores1, coresErr1 := benchkit.CoreStats()
	wait1, waitErr1 := benchkit.RunQueueWait(wp.PID())
	stopFeed()
	fwg.Wait()
	if err, _ := feedErr.Load().(error); err != nil {
		return r, fmt.Errorf("submit: %w", err)
	}
	// The rate is Little's law over the window, from the LM's own log: the
	// calls started together at warm-up end in waves, which a count of
	// answers in a window of a few call times catches 3 or 4 of. Calls that
	// came before t1 are answered within a call time and a margin.
	if err := sleepFor(ctx, call+time.Second); err != nil {
		return r, err
	}
	avg, meanCall := benchkit.Occupancy(lm.Answers(), t0, t1)
	avgQueued := mean(queued)
	rate := avg / max(meanCall.Seconds(), 1e-9)
	ideal := float64(n) / call.Seconds()
	r.row("LM calls completed/s", rate, "calls/s").base("ideal N/2s", ideal)
	r.row("% of ideal rate", pct(rate, ideal), "%").atLeast(90)
	r.row("LM calls in flight (mean)", avg, "calls").base("N", float64(n))
	r.row("LM call time (mean)", benchkit.MS(meanCall), "ms").base("the LM's TTFT", benchkit.MS(call))
	r.detail("in_flight_sampled_mean", mean(inflight))
	r.row("LM calls in flight (max)", float64(lm.MaxInFlight()), "calls").base("N", float64(n))
	r.row("jobs pending meanwhile (mean)", avgQueued, "jobs").base("N", float64(n))
	r.row("worker RSS per in-flight job", float64(rss-idleRSS)/max(avg, 1)/1024, "KiB")
	r.row("worker RSS, peak", float64(rss)/(1<<20), "MiB").base("idle", float64(idleRSS)/(1<<20))
	r.row("worker CPU", cpuPct, "% core")
	// Reported, no goal: these jobs wait 2 s on the LM (the budget scenario
	// holds the instant-LM streamed job to its goal).
	r.row("worker CPU per streamed job", ms(cpuUsed)/max(rate*elapsed.Seconds(), 1), "ms")
	r.note("N=%d, fakelm answers every streamed call after %v (TTFT %v, then the rest at once); jobs fed straight to Redis (~N pending) over %v. Rate = mean calls in flight ÷ mean call time (Little's law, both exact from the LM's log of each call's start and end); CPU per job = the worker's CPU time ÷ (rate × window).", n, call, call, window)
	var restPct float64
	if restErr == nil && restErr1 == nil {
		restPct = pct((rest1 - rest0).Seconds(), elapsed.Seconds())
		r.row("Redis + bench process (fake LM, feeder) CPU", restPct, "% core")
	}
	// What the processes used is not what they could have had: the cores
	// are shared with the machine's other processes, which only the cores'
	// own busy time shows.
	workerCore := -1.0
	if pins.On() && coresErr == nil && coresErr1 == nil {
		if b, err := benchkit.BusyPercent(cores0, cores1, pins.Measured); err == nil {
			workerCore = b
			r.row("worker's CPU "+pins.Measured+" busy, all processes", b, "% core")
		}
		if b, err := benchkit.BusyPercent(cores0, cores1, pins.Rest); err == nil {
			r.row("CPU "+pins.Rest+" busy, all processes", b, "% core")
		}
	}
	runWait := -1.0
	if waitErr == nil && waitErr1 == nil {
		// Summed over threads: above 100% when several wait at once.
		runWait = pct((wait1 - wait0).Seconds(), elapsed.Seconds())
		r.row("worker's threads runnable, waiting for a CPU", runWait, "% of window")
	}
	if rate < 0.9*ideal {
		why := fmt.Sprintf("the worker used %.0f%% of a core, Redis and the bench process (fake LM, feeder) %.0f%%", cpuPct, restPct)
		switch {
		case cpuPct < 80 && (workerCore >= 80 || runWait >= 25):
			why = fmt.Sprintf("the worker's CPU %s was %.0f%% busy but the worker had %.0f%% of it, its threads waiting on the run queue %.0f%% of the window: other processes on the machine (load average %s) took the rest, so the worker was short of CPU, not idle", pins.Measured, workerCore, cpuPct, runWait, loadAverage())
		case avgQueued < float64(n)/10:
			why = fmt.Sprintf("the queue often ran dry (%.0f pending on average): the feeder in this process, not the worker, was short; ", avgQueued) + why
		case cpuPct < 80 && restPct >= 80:
			why = "the queue held work all along, and " + why + ": the worker waited on the other side (Redis, the LM), which had one core (less the neighbours' share) to itself"
		default:
			why = "the queue held work all along, and " + why + fmt.Sprintf(" with the machine's load average at %s: neither side was CPU-bound, so the starts were latency-bound: each asynq server's dequeue loop starts one job at a time (dequeue script, hand-off, the record's start script), every step a round trip to a Redis that waits its turn for a shared core", loadAverage())
		}
		r.note("below the goal: %.0f%% of ideal with %.0f of %d calls in flight on average; %s.", pct(rate, ideal), avg, n, why)
	}
	return r, nil
}

func sleepFor(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loadAverage is the machine's 1-minute load average ("?" when unknown).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// restCPU is the CPU time Redis and this process (the fake LM and the load
// generator) have used: what shares the other core when pins are on.
func restCPU(ctx context.Context, s *scope) (time.Duration, error) {
	self, err := benchkit.CPUTime(os.Getpid())
	if err != nil {
		return 0, err
	}
	if s.b.embedded {
		return self, nil
	}
	rc, err := benchkit.RedisCPU(ctx, s.b.redisAddr)
	return self + rc, err
}

// benchFanout: N SSE subscribers of one streamed job on one API process:
// token relay latency (Redis publish → client read) and RSS per subscriber.
func benchFanout(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	n := s.pick(10000, 1000)
	if lim := fileLimit(); lim > 0 && uint64(n+1000) > lim {
		scaled := max(10, int(lim)-1000)
		r.note("open-file limit %d: subscribers scaled from %d to %d", lim, n, scaled)
		n = scaled
	}
	url, _, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	// 20 tokens/s: each token is its own event (coalescing is 25 ms).
	lm, err := s.lm(fakelm.Config{TokensPerSecond: 20})
	if err != nil {
		return r, err
	}
	pins, err := s.pin(ctx, r)
	if err != nil {
		return r, err
	}
	st := s.stack(url, lm, "SSE_MAX_STREAMS_PER_KEY=1000000")
	st.Pins = pins
	apiSt, workerSt := st, st
	apiSt.CPUs, workerSt.CPUs = pins.Measured, pins.Rest
	ap, c, err := s.api(ctx, apiSt)
	if err != nil {
		return r, err
	}
	// Baseline: one subscriber, same API.
	wp, _, err := s.worker(ctx, workerSt)
	if err != nil {
		return r, err
	}
	one, _, _, err := fanout(ctx, s, c, 1, nil)
	if err != nil {
		return r, err
	}
	if err := wp.Stop(30 * time.Second); err != nil {
		return r, err
	}
	// N subscribers of a job no worker runs yet.
	idleRSS, _ := ap.RSS()
	var connectedRSS int64
	var cpu *cpuMeter // from the first event on: relaying, not connecting
	var rest0 time.Duration
	var restErr error
	var mw machineWindow
	many, connected, frames, err := fanout(ctx, s, c, n, func() error {
		connectedRSS, _ = ap.RSS()
		cpu = meterCPU(ap)
		rest0, restErr = restCPU(ctx, s)
		mw = startMachineWindow()
		_, _, err := s.worker(ctx, workerSt)
		return err
	})
	if err != nil {
		return r, err
	}
	cpuUsed, cpuPct := cpu.used(), cpu.percent()
	busyPct, _ := mw.since()
	restPct := -1.0
	if rest1, err := restCPU(ctx, s); err == nil && restErr == nil {
		restPct = pct((rest1 - rest0).Seconds(), time.Since(cpu.t0).Seconds())
	}
	r.row("token relay p50", benchkit.MS(many.P50), "ms").base("1 subscriber", benchkit.MS(one.P50))
	r.row("token relay p99", benchkit.MS(many.P99), "ms").base("1 subscriber", benchkit.MS(one.P99)).atMost(50)
	r.row("subscribers connected", float64(connected), "").base("asked", float64(n))
	r.row("events delivered", float64(frames), "")
	r.row("API CPU per delivered event", float64(cpuUsed)/float64(time.Microsecond)/float64(max(frames, 1)), "µs")
	r.row("API CPU while relaying", cpuPct, "% core")
	if restPct >= 0 {
		r.row("Redis + bench process (clients, fake LM) CPU meanwhile", restPct, "% core")
	}
	r.row("machine CPU busy meanwhile, all processes and neighbours", busyPct, "% of all CPUs")
	r.row("API RSS per subscriber", float64(connectedRSS-idleRSS)/float64(max(connected, 1))/1024, "KiB")
	r.row("API RSS with subscribers", float64(connectedRSS)/(1<<20), "MiB").base("idle", float64(idleRSS)/(1<<20))
	r.note("%d SSE clients in this process, each a lean reader (benchkit.LeanEvents: its own connection, 1 KiB buffers, data lines skipped), with pins on, on the other CPU than the API with the worker and Redis (unpinned, their reading is part of the figure); relay latency = client read time − the event's Redis stream id time (1 ms resolution); fakelm streams 20 tokens/s so each token is its own event.", n)
	return r, nil
}

// fanout subscribes n clients to a new streamed job's events, calls start
// once all are connected (nil: the job runs already), and returns the token
// relay latencies over all clients, the clients connected and the events
// they were delivered.
func fanout(ctx context.Context, s *scope, c *benchkit.Client, n int, start func() error) (benchkit.Summary, int, int64, error) {
	id, err := c.Submit(ctx, fmt.Sprintf("fanout %d: how do rainbows form in the sky after rain?", time.Now().UnixNano()), true)
	if err != nil {
		return benchkit.Summary{}, 0, 0, err
	}
	var (
		mu        sync.Mutex
		lat       []time.Duration
		connected atomic.Int64
		failed    atomic.Int64
		started   atomic.Bool  // start has been called: frames count from here
		frames    atomic.Int64 // delivered since start
		firstErr  atomic.Value
		wg        sync.WaitGroup
		sem       = make(chan struct{}, 256) // connect at most this many at once
	)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			var mine []time.Duration
			first := true
			err := benchkit.LeanEvents(sctx, c.Base, "/v1/jobs/"+id+"/events", func(f benchkit.Frame) bool {
				if first {
					first = false
					connected.Add(1)
					<-sem
				}
				if started.Load() {
					frames.Add(1)
				}
				if f.Event == "token" {
					if at := f.IDTime(); !at.IsZero() {
						mine = append(mine, f.At.Sub(at))
					}
				}
				return f.Event != "completed" && f.Event != "failed"
			})
			if first {
				<-sem
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	end := time.Now().Add(2 * time.Minute)
	for connected.Load()+failed.Load() < int64(n) && time.Now().Before(end) && ctx.Err() == nil {
		_ = sleepFor(ctx, 50*time.Millisecond)
	}
	if n > 1 {
		s.logf("%d subscribers connected, %d failed", connected.Load(), failed.Load())
	}
	started.Store(true)
	if start != nil {
		if err := start(); err != nil {
			cancel()
			wg.Wait()
			return benchkit.Summary{}, 0, 0, err
		}
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil && connected.Load() == 0 {
		return benchkit.Summary{}, 0, 0, err
	}
	if f := failed.Load(); f > 0 {
		err, _ := firstErr.Load().(error)
		s.logf("%d subscribers failed: %v", f, err)
	}
	return benchkit.Summarize(lat), int(connected.Load()), frames.Load(), nil
}

// benchLoad: clients mixing submit, poll, SSE and /predict for a while:
// zero 5xx, zero lost jobs, memory flat after the run.
func benchLoad(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	clients := s.pick(1000, 100)
	dur := s.pickDur(60*time.Second, 10*time.Second)
	url, _, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	lm, err := s.lm(fakelm.Config{TTFT: 50 * time.Millisecond, TokensPerSecond: 400})
	if err != nil {
		return r, err
	}
	// gctrace: the live heap after a GC, read from the processes' output;
	// no memory cache, whose growth (bounded) would hide a leak.
	st := s.stack(url, lm, "WORKER_CONCURRENCY=500", "SSE_MAX_STREAMS_PER_KEY=1000000",
		"GODEBUG=gctrace=1", "CACHE_MEMORY_ENABLED=false")
	wp, wmetrics, err := s.worker(ctx, st)
	if err != nil {
		return r, err
	}
	ap, c, err := s.api(ctx, st)
	if err != nil {
		return r, err
	}
	// Warm up, then the "before" memory.
	if _, err := benchkit.RunLoad(ctx, c, benchkit.LoadConfig{Clients: 20, Duration: 2 * time.Second, Tag: "warm"}); err != nil {
		return r, err
	}
	before := memSnapshot(ctx, ap, c.Base+"/metrics", wp, wmetrics+"/metrics")
	before["lm_conns"] = float64(lm.Conns())
	port, err := portOf(s.b.redisAddr)
	if err != nil {
		return r, err
	}
	before["redis_port"] = float64(port)
	if err := liveHeaps(ctx, before, ap, c.Base+"/metrics", wp, wmetrics+"/metrics"); err != nil {
		return r, err
	}
	res, err := benchkit.RunLoad(ctx, c, benchkit.LoadConfig{Clients: clients, Duration: dur, Tag: fmt.Sprint(time.Now().UnixNano())})
	if err != nil {
		return r, err
	}
	// Let connections close and goroutines end (bounded), then "after".
	c.HTTP.CloseIdleConnections()
	var after map[string]float64
	for end := time.Now().Add(15 * time.Second); ; {
		after = memSnapshot(ctx, ap, c.Base+"/metrics", wp, wmetrics+"/metrics")
		after["lm_conns"] = float64(lm.Conns())
		after["redis_port"] = float64(port)
		if after["api_goroutines"] <= before["api_goroutines"]+10 || time.Now().After(end) {
			break
		}
		_ = sleepFor(ctx, 500*time.Millisecond)
	}
	if err := liveHeaps(ctx, after, ap, c.Base+"/metrics", wp, wmetrics+"/metrics"); err != nil {
		return r, err
	}
	r.detail("result", res)
	r.detail("memory_before", before)
	r.detail("memory_after", after)
	jobsPerSec := float64(res.Accepted) / res.Elapsed.Seconds()
	r.row("requests", float64(res.Requests), "")
	r.row("jobs accepted/s", jobsPerSec, "jobs/s")
	r.row("5xx answers", float64(res.Status5xx), "").equals(0)
	r.row("transport errors", float64(res.TransportErrors), "").equals(0)
	r.row("lost or unfinished jobs", float64(res.Accepted-res.Completed), "").base("accepted", float64(res.Accepted)).equals(0)
	r.row("submit p99", benchkit.MS(res.Submit.P99), "ms").base("p50", benchkit.MS(res.Submit.P50))
	// An idle keep-alive connection to the LM holds 2 goroutines in the
	// worker (read and write loops) until its idle timeout: not a leak.
	keepAlive := 2 * max(0, after["lm_conns"]-before["lm_conns"])
	r.row("worker idle LM connections after", after["lm_conns"], "conns").base("before", before["lm_conns"])
	for _, p := range []string{"api", "worker"} {
		allow := before[p+"_goroutines"] + 20
		if p == "worker" {
			allow += keepAlive
		}
		r.row(p+" goroutines after", after[p+"_goroutines"], "").base("before", before[p+"_goroutines"]).atMost(allow)
		// Each pooled Redis connection holds go-redis's 32 KiB read and
		// write buffers until it has been idle 30 minutes: not a leak.
		pooled := max(0, after[p+"_redis_conns"]-before[p+"_redis_conns"]) * 64 / 1024
		r.row(p+" Redis connections held after", after[p+"_redis_conns"], "conns").base("before", before[p+"_redis_conns"])
		r.row(p+" live heap after a GC", after[p+"_live_mb"], "MB").base("before", before[p+"_live_mb"]).atMost(before[p+"_live_mb"]*1.25 + 4 + pooled)
		r.row(p+" RSS after", after[p+"_rss_mib"], "MiB").base("before", before[p+"_rss_mib"])
	}
	r.note("%d clients for %v on loopback (sessions by kind: %v); statuses %v; \"after\" is read once the API's goroutines settle (≤ 15 s). The live heap is what the second GC after each point left (GODEBUG=gctrace=1; GCs are provoked by fetching /metrics; sync.Pool victims survive one); the worker runs without the memory cache so that its bounded growth does not hide a leak; the goal allows 25%% + 4 MB, plus 64 KiB (go-redis's buffers) per Redis connection the process's pool grew by (they close after 30 idle minutes). RSS seldom shrinks after a peak (the Go runtime returns memory lazily).", clients, dur, res.ByKind, res.ByStatus)
	if len(res.Samples) > 0 {
		r.note("error samples: %v", res.Samples)
	}
	return r, nil
}

// memSnapshot reads goroutines, heap in use and RSS of the API and worker.
func memSnapshot(ctx context.Context, ap *benchkit.Proc, apiMetrics string, wp *benchkit.Proc, workerMetrics string) map[string]float64 {
	out := map[string]float64{}
	for _, p := range []struct {
		name, url string
		proc      *benchkit.Proc
	}{{"api", apiMetrics, ap}, {"worker", workerMetrics, wp}} {
		if m, err := benchkit.Metrics(ctx, p.url, "go_goroutines", "go_memstats_heap_inuse_bytes"); err == nil {
			out[p.name+"_goroutines"] = m["go_goroutines"]
			out[p.name+"_heap_mib"] = m["go_memstats_heap_inuse_bytes"] / (1 << 20)
		}
		if rss, err := p.proc.RSS(); err == nil {
			out[p.name+"_rss_mib"] = float64(rss) / (1 << 20)
		}
	}
	return out
}

// redisPort is the run's Redis port, which liveHeaps's caller stores in m.
func redisPort(m map[string]float64) (int, error) {
	p, ok := m["redis_port"]
	if !ok {
		return 0, errors.New("no redis port")
	}
	return int(p), nil
}

// liveHeaps adds the live heap after a GC of the API and the worker to m.
func liveHeaps(ctx context.Context, m map[string]float64, ap *benchkit.Proc, apiMetrics string, wp *benchkit.Proc, workerMetrics string) error {
	for _, p := range []struct {
		name, url string
		proc      *benchkit.Proc
	}{{"api", apiMetrics, ap}, {"worker", workerMetrics, wp}} {
		live, err := benchkit.HeapAfterGC(ctx, p.proc, p.url, 30*time.Second)
		if err != nil {
			return err
		}
		m[p.name+"_live_mb"] = live
		if port, err := redisPort(m); err == nil {
			if n, err := benchkit.TCPConnsTo(p.proc.PID(), port); err == nil {
				m[p.name+"_redis_conns"] = float64(n)
			}
		}
	}
	return nil
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(max(len(xs), 1))
}

func portOf(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}
