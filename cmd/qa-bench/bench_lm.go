package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// benchRateLimit: the LM enforces R requests a minute as providers do, R/60
// a second (fakelm's RPMPerSecond); the worker's LM_RPM=R; a burst of batch
// jobs larger than the run can take. Achieved is the LM calls answered 200
// in the run's last full minute; the busiest second is the most calls the LM
// got (answered or refused) in any one second, against the goal of 2 × R/60.
func benchRateLimit(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	rpm := s.pick(600, 300)
	// Even a quick run lasts a full minute past its start-up: the goal is
	// measured over one.
	run := s.pickDur(80*time.Second, 65*time.Second)
	url, rdb, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	lm, err := s.lm(fakelm.Config{RPM: rpm, RPMPerSecond: true})
	if err != nil {
		return r, err
	}
	st := s.stack(url, lm, fmt.Sprintf("LM_RPM=%d", rpm), "BATCH_CONCURRENCY=50")
	if _, _, err := s.worker(ctx, st); err != nil {
		return r, err
	}
	jc, _, err := jobsClient(rdb)
	if err != nil {
		return r, err
	}
	burst := int(float64(rpm)*run.Minutes()*1.5) + 100
	t0 := time.Now()
	if err := submitMany(ctx, jc, burst, func(i int) store.SubmitRequest {
		return ask(fmt.Sprintf("rate %d-%d: what is a rate limit?", t0.UnixNano(), i), jobs.QueueBatch, jobs.Options{})
	}); err != nil {
		return r, err
	}
	_ = sleepFor(ctx, run-time.Since(t0))
	end := time.Now()
	from := end.Add(-time.Minute)
	if from.Before(t0) {
		from = t0
	}
	var ok, limited, okLast float64
	var perSecond [200]int
	for _, a := range lm.Answers() {
		// The busiest second counts what the limiter sent, refused or not.
		if sec := int(a.At.Sub(t0) / time.Second); sec >= 0 && sec < len(perSecond) {
			perSecond[sec]++
		}
		switch a.Status {
		case 200:
			ok++
			if !a.At.Before(from) && a.At.Before(end) {
				okLast++
			}
		case 429:
			limited++
		}
	}
	perSec := float64(rpm) / 60
	secs := int(min(run, time.Duration(len(perSecond))*time.Second) / time.Second)
	peak := 0
	for _, n := range perSecond[:secs] {
		peak = max(peak, n)
	}
	window := end.Sub(from)
	achieved := okLast / window.Minutes()
	r.row("busiest second", float64(peak), "calls").base("R/60", perSec).atMost(2 * perSec)
	r.row("LM calls answered/min (last minute)", achieved, "/min").base("R (the LM's limit)", float64(rpm))
	r.row("% of R achieved", pct(achieved, float64(rpm)), "%").atLeast(95)
	r.row("% of LM calls answered 429", pct(limited, ok+limited), "%").atMost(1)
	r.detail("calls_per_second", perSecond[:secs])
	r.note("R=%d/min, enforced by the LM as %.0f a second; %d batch jobs submitted at once (more than %v can take), BATCH_CONCURRENCY=50; achieved counts the 200s of [%v, %v] after the burst; %v 200s and %v 429s in all.",
		rpm, perSec, burst, run, from.Sub(t0).Round(time.Second), end.Sub(t0).Round(time.Second), ok, limited)
	if window < time.Minute {
		r.note("the run was cut short of a full minute: achieved is over %v only.", window.Round(time.Second))
	}
	return r, nil
}

// submitMany submits n jobs from 16 goroutines.
// ask is the request of question q on queue, with opts.
func ask(q, queue string, opts jobs.Options) store.SubmitRequest {
	s := jobs.Spec{ClientSpec: jobs.QuestionSpec(q), ServerSpec: jobs.ServerSpec{Queue: queue}}
	s.Options = opts
	return store.SubmitRequest{Spec: s}
}

func submitMany(ctx context.Context, jc *store.Client, n int, req func(i int) store.SubmitRequest) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if _, err := jc.Submit(ctx, req(i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// benchCache: hit latency of each cache layer (lmclient alone, in this
// process) beside an LM call; then a worker given duplicate questions calls
// the LM once per unique question.
func benchCache(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	url, rdb, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	lm, err := s.lm(fakelm.Config{})
	if err != nil {
		return r, err
	}
	hits := s.pick(500, 100)
	layers := []struct {
		name string
		cfg  func(*lmclient.Config, *lmclient.Deps)
	}{
		{"none (LM call)", func(*lmclient.Config, *lmclient.Deps) {}},
		{"memory", func(c *lmclient.Config, _ *lmclient.Deps) { c.MemoryEnabled = true }},
		{"disk", func(c *lmclient.Config, _ *lmclient.Deps) { c.DiskEnabled, c.Dir = true, s.b.dir+"/cache" }},
		{"redis", func(c *lmclient.Config, d *lmclient.Deps) { c.RedisEnabled = true; d.Redis = rdb }},
	}
	var lmCall float64
	for _, l := range layers {
		cfg := lmclient.Config{APIBase: lm.URL(), APIKey: "x"}
		deps := lmclient.Deps{}
		l.cfg(&cfg, &deps)
		lc, err := lmclient.New(cfg, deps)
		if err != nil {
			return r, err
		}
		req := &program.Request{Messages: []program.Message{{Role: "user", Content: "What does a cache hit cost in layer " + l.name + "?"}}}
		if comp, err := lc.Complete(ctx, req); err != nil {
			_ = lc.Close()
			return r, err
		} else if err := lc.Accept(ctx, req, comp); err != nil {
			_ = lc.Close()
			return r, err
		}
		lat := make([]time.Duration, 0, hits)
		for range hits {
			t0 := time.Now()
			comp, err := lc.Complete(ctx, req)
			if err != nil {
				_ = lc.Close()
				return r, err
			}
			lat = append(lat, time.Since(t0))
			if l.name != layers[0].name && !comp.CacheHit {
				_ = lc.Close()
				return r, fmt.Errorf("layer %s: not a hit", l.name)
			}
		}
		_ = lc.Close()
		sum := benchkit.Summarize(lat)
		if l.name == layers[0].name {
			lmCall = float64(sum.P50) / float64(time.Microsecond)
			r.row("LM call p50 (no cache)", lmCall, "µs")
			continue
		}
		r.row("hit p50, "+l.name, float64(sum.P50)/float64(time.Microsecond), "µs").base("LM call", lmCall)
	}
	// Duplicates through a worker.
	unique, copies := s.pick(100, 30), 4
	calls0 := lm.Calls()
	st := s.stack(url, lm, "BATCH_CONCURRENCY=20")
	if _, _, err := s.worker(ctx, st); err != nil {
		return r, err
	}
	jc, _, err := jobsClient(rdb)
	if err != nil {
		return r, err
	}
	tag := time.Now().UnixNano()
	ids := make([]string, unique*copies)
	if err := submitMany(ctx, jc, len(ids), func(i int) store.SubmitRequest {
		return ask(fmt.Sprintf("duplicate %d-%d: why is the sea salty?", tag, i%unique), jobs.QueueBatch, jobs.Options{})
	}); err != nil {
		return r, err
	}
	// Wait for the batch queue to drain (bounded by ctx).
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for ctx.Err() == nil {
		q, err := insp.GetQueueInfo(jobs.QueueBatch)
		if err == nil && q.Pending == 0 && q.Active == 0 && q.Scheduled == 0 && q.Retry == 0 {
			break
		}
		_ = sleepFor(ctx, 100*time.Millisecond)
	}
	calls := lm.Calls() - calls0
	r.row("LM calls for duplicate questions", float64(calls), "calls").base("jobs", float64(len(ids))).equals(float64(unique))
	r.note("%d hits per layer, each layer alone; then %d batch jobs (%d unique questions × %d, submitted at once, BATCH_CONCURRENCY=20) through a worker with the memory and Redis layers (the defaults).", hits, len(ids), unique, copies)
	if calls > int64(unique) {
		r.note("missed: %d extra LM calls. Duplicates that run at the same time all miss the cache (lmclient has no single-flight per cache key); a per-key in-flight lock (single-flight in process, SET NX in Redis across workers) would close it.", calls-int64(unique))
	}
	return r, nil
}

// benchBatch: POST /v1/batches ingest lines/s and drain items/s beside bare
// asynq enqueue, when the API has batches.
func benchBatch(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	url, rdb, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	lm, err := s.lm(fakelm.Config{})
	if err != nil {
		return r, err
	}
	st := s.stack(url, lm, "BATCH_CONCURRENCY=100")
	_, c, err := s.api(ctx, st)
	if err != nil {
		return r, err
	}
	// Probe: a missing route is 404 (or 405); an empty batch is refused as
	// invalid by a real one.
	probe := c.Do(ctx, http.MethodPost, "/v1/batches", []any{}, http.StatusAccepted, nil)
	if se, ok := probe.(*benchkit.StatusError); ok && (se.Status == http.StatusNotFound || se.Status == http.StatusMethodNotAllowed) {
		r.Skipped = "POST /v1/batches is not in this build (HTTP " + fmt.Sprint(se.Status) + ")"
		return r, nil
	}
	if _, _, err := s.worker(ctx, st); err != nil {
		return r, err
	}
	n := s.pick(50000, 2000)
	var body bytes.Buffer
	tag := time.Now().UnixNano()
	for i := range n {
		fmt.Fprintf(&body, `{"custom_id":"c%d","question":"batch %d-%d: what is the capital of France?"}`+"\n", i, tag, i)
	}
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+"/v1/batches", bytes.NewReader(body.Bytes()))
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return r, err
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ingest := time.Since(t0)
	if resp.StatusCode/100 != 2 {
		return r, fmt.Errorf("POST /v1/batches: %d %.300s", resp.StatusCode, raw)
	}
	var created map[string]any
	_ = json.Unmarshal(raw, &created)
	id, _ := created["id"].(string)
	if id == "" {
		return r, fmt.Errorf("POST /v1/batches: no id in %.300s", raw)
	}
	// Drain: poll the batch until every item has ended.
	var last map[string]any
	done := 0
	drainBound := s.pickDur(60*time.Second, 20*time.Second)
	for ctx.Err() == nil && time.Since(t0) < drainBound {
		var b map[string]any
		if err := c.Do(ctx, http.MethodGet, "/v1/batches/"+id, nil, http.StatusOK, &b); err != nil {
			return r, err
		}
		last = b
		done = endedItems(b)
		status, _ := b["status"].(string)
		if done >= n || status == "completed" || status == "failed" || status == "cancelled" || status == "expired" || status == "ended" {
			break
		}
		_ = sleepFor(ctx, 250*time.Millisecond)
	}
	drain := time.Since(t0)
	if done < n { // the rest is not measured: stop it
		_ = c.Do(ctx, http.MethodPost, "/v1/batches/"+id+"/cancel", nil, http.StatusOK, nil)
	}
	r.detail("batch", last)
	// Baseline: bare asynq enqueue of as many tasks, 16 goroutines, same Redis.
	bare, err := bareEnqueue(ctx, rdb, n)
	if err != nil {
		return r, err
	}
	r.row("ingest lines/s (POST /v1/batches)", float64(n)/ingest.Seconds(), "lines/s").base("bare asynq enqueue", bare)
	r.row("drain items/s (submit → all ended)", float64(done)/drain.Seconds(), "items/s")
	r.note("%d lines of JSONL in one POST; drain measured until all ended or %v (%d ended), then the batch is cancelled; BATCH_CONCURRENCY=100, instant LM; the baseline enqueues as many bare asynq tasks from 16 goroutines.", n, drainBound, done)
	return r, nil
}

// endedItems reads a batch's count of ended items from the usual shapes.
func endedItems(b map[string]any) int {
	for _, k := range []string{"counts", "request_counts"} {
		if m, ok := b[k].(map[string]any); ok {
			n := 0
			for _, f := range []string{"completed", "failed", "cancelled", "expired"} {
				if v, ok := m[f].(float64); ok {
					n += int(v)
				}
			}
			return n
		}
	}
	return 0
}

// bareEnqueue enqueues n no-op tasks with 16 goroutines: tasks/s.
func bareEnqueue(ctx context.Context, rdb *redis.Client, n int) (float64, error) {
	client := asynq.NewClientFromRedisClient(rdb)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	t0 := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for int(next.Add(1)) <= n {
				if _, err := client.EnqueueContext(ctx, asynq.NewTask("bare", []byte(`{"q":"`+strings.Repeat("x", 60)+`"}`)), asynq.Queue("bare-enqueue")); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}
