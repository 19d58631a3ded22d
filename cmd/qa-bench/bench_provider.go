package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// Issue 17's goals for a provider-mode batch, beside the same batch run
// live: no more worker CPU or Redis commands per item (each item's prompt
// is rendered and its answer parsed once, as live, with no HTTP call of its
// own), a worker whose peak RSS does not grow with the batch (the upload is
// streamed), and half the live price.
const (
	// goalProviderCostRatio is the provider batch's cost ÷ the same calls'
	// live cost (OpenAI's batch price), give or take the rounding: each
	// call's cost is rounded half up to a whole micro-dollar, at either
	// price, so a call's batch cost is within costRoundingPerCall of half
	// its live cost (0.5 + 0.5 ÷ 2).
	goalProviderCostRatio = 0.5
	costRoundingPerCall   = 0.75
	// goalProviderRSSPer1k is the most the worker's peak RSS (MiB), and
	// its peak Go heap (MB), may grow per 1,000 more items: far below a
	// request file held whole (a request line is over 1 KiB: over 1 MiB
	// per 1,000 items).
	goalProviderRSSPer1k = 0.25
	// providerPoll is the scenario's PROVIDER_POLL_INTERVAL (and
	// PROVIDER_POLL_MAX): the fake answers at once, so the runner's first
	// look finds the batch done.
	providerPoll = 200 * time.Millisecond
	// providerSlots is BATCH_CONCURRENCY for the live run (the batch
	// scenario's) and the worker's slots.
	providerSlots = 100
	// noMemoryCache turns the worker's in-process LM cache off, which
	// otherwise keeps every answer (see the scenario's notes).
	noMemoryCache = "CACHE_MEMORY_ENABLED=false"
)

// benchProvider: issue 17's provider batches. The same N-item batch, on
// fresh databases and a fresh worker each, run live (the baseline) and
// with ?mode=provider against the fake LM's Batch API (instant turnaround,
// at least two chunks), and provider mode again at N/4 for the worker's
// memory: per item worker and API CPU, Redis commands and wall time, peak
// worker RSS, the LM calls each way and the cost at batch and live price.
func benchProvider(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	return r, providerScenario(ctx, s, r, s.pick(10000, 2000))
}

// providerScenario runs the scenario with n items and adds its rows to r.
func providerScenario(ctx context.Context, s *scope, r *scenarioResult, n int) error {
	lm, err := s.lm(fakelm.Config{})
	if err != nil {
		return err
	}
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)
	// One chunk size for both provider runs (two chunks at N/4, eight at
	// N), so that what grows from one to the other grows with N, not with
	// the chunk.
	chunk := max(n/8, 1)
	live, err := s.batchRun(ctx, lm, jobs.BatchModeLive, tag, n, 0, noMemoryCache)
	if err != nil {
		return fmt.Errorf("live batch: %w", err)
	}
	small, err := s.batchRun(ctx, lm, jobs.BatchModeProvider, tag, max(n/4, 1), chunk, noMemoryCache)
	if err != nil {
		return fmt.Errorf("provider batch of %d: %w", max(n/4, 1), err)
	}
	prov, err := s.batchRun(ctx, lm, jobs.BatchModeProvider, tag, n, chunk, noMemoryCache)
	if err != nil {
		return fmt.Errorf("provider batch: %w", err)
	}
	cached, err := s.batchRun(ctx, lm, jobs.BatchModeProvider, tag, n, chunk)
	if err != nil {
		return fmt.Errorf("provider batch, in-process LM cache on: %w", err)
	}
	providerRows(r, live, small, prov)
	r.note("The same %d-item batch (unique questions, built-in QA program, default model) run three times (a fourth below), each on a fresh Redis database with a fresh API and worker (so no cache answers): live (BATCH_CONCURRENCY=%d, the baseline), then ?mode=provider with %d and %d items against the fake LM's Files + Batches API (instant turnaround; PROVIDER_POLL_INTERVAL=PROVIDER_POLL_MAX=%v; PROVIDER_MAX_REQUESTS=%d, so %d and %d chunks).", n, providerSlots, small.n, prov.n, providerPoll, chunk, small.chunks, prov.chunks)
	r.note("Per-item figures are (submit → the batch ended and, in provider mode, the runner's cost written) − an idle window of the same stack, scaled to the run's length, ÷ items. CPU: each process's utime+stime (10 ms ticks); commands: INFO commandstats (script-internal calls included). Peak RSS: the worker's VmHWM, reset just before the submit; peak Go heap: the largest heap at a GC's start during the run (GODEBUG=gctrace=1, the worker's last 64 KiB of output: %d, %d and %d GCs read), the part of the RSS the runner's data can move (the rest is the binary, stacks and pages the runtime has not returned yet). LM calls: chat completions the fake LM answered over HTTP (live) and lines its provider batches answered (tagged with the batch's id).", live.gc.GCs, small.gc.GCs, prov.gc.GCs)
	for _, b := range []batchRun{live, small, prov} {
		r.note("%s, %d items: Redis calls per item %s; batch object %s.", b.mode, b.n, benchkit.Top(b.cost.Commands, 8), b.summary())
		if b.mode == jobs.BatchModeProvider {
			r.note("provider, %d items: provider phase first seen (s after the submit): %s.", b.n, b.timeline())
		}
	}
	r.row("peak worker RSS, provider, in-process LM cache on (the default)", float64(cached.peakRSS)/(1<<20), "MiB").base("off", float64(prov.peakRSS)/(1<<20))
	r.note("The in-process LM cache (CACHE_MEMORY_ENTRIES, default 100,000 entries) keeps every answer a worker parses, provider or live, so with it on a worker's RSS grows with the answers it has seen until the cap: the main runs turn it off (CACHE_MEMORY_ENABLED=false, all three alike) to measure what the runner itself holds; the last row is a fourth run, provider mode with %d items and the cache on.", n)
	r.detail("live_commands_per_item", live.cost.Commands)
	r.detail("provider_commands_per_item", prov.cost.Commands)
	return nil
}

// batchRun is one batch's run and what it cost.
type batchRun struct {
	mode jobs.BatchMode
	n    int
	// wall runs from the submit to the batch's end (in provider mode, to
	// the runner's last word: phase done, cost written).
	wall time.Duration
	// cost is per item.
	cost benchkit.Cost
	// peakRSS is the worker's peak RSS during the run, idleRSS its RSS
	// before; gc the peaks of its GCs during the run (gctrace).
	peakRSS, idleRSS int64
	gc               benchkit.GCPeaks
	// liveCalls are chat completions the fake LM answered over HTTP,
	// batchLines the lines its provider batches for this batch answered.
	liveCalls, batchLines int64
	// uploaded is the bytes uploaded to the fake's Files API.
	uploaded int64
	// maxRequests is PROVIDER_MAX_REQUESTS, chunks the provider batches.
	maxRequests, chunks int
	batch               providerView
	// phases are the provider phases the bench saw, in order, with when it
	// first saw each (it looks every 100 ms).
	phases []phaseSeen
}

// phaseSeen is when the bench first saw a batch's provider phase.
type phaseSeen struct {
	phase jobs.ProviderPhase
	at    time.Duration
}

func (b batchRun) timeline() string {
	var out []string
	for _, p := range b.phases {
		out = append(out, fmt.Sprintf("%s %.2f", p.phase, p.at.Seconds()))
	}
	return strings.Join(out, ", ")
}

// providerView is what the scenario reads of a batch object.
type providerView struct {
	ID       string                 `json:"id"`
	Status   jobs.BatchStatus       `json:"status"`
	Counts   jobs.BatchCounts       `json:"request_counts"`
	Mode     jobs.BatchMode         `json:"mode"`
	Provider *jobs.ProviderProgress `json:"provider"`
	Cost     *jobs.BatchCost        `json:"cost"`
}

// done is whether the batch has ended and, in provider mode, its runner
// has had its last word (phase done: the cost is final).
func (v providerView) done() bool {
	if !v.Status.Terminal() {
		return false
	}
	return v.Mode != jobs.BatchModeProvider || (v.Provider != nil && v.Provider.Phase == jobs.ProviderDone && v.Cost != nil)
}

func (b batchRun) summary() string {
	out, _ := json.Marshal(struct {
		Status   jobs.BatchStatus     `json:"status"`
		Counts   jobs.BatchCounts     `json:"request_counts"`
		Provider *jobs.ProviderCounts `json:"provider_counts,omitempty"`
		Cost     *jobs.BatchCost      `json:"cost,omitempty"`
	}{b.batch.Status, b.batch.Counts, providerCounts(b.batch.Provider), b.batch.Cost})
	return string(out)
}

func providerCounts(p *jobs.ProviderProgress) *jobs.ProviderCounts {
	if p == nil {
		return nil
	}
	return &p.Counts
}

// costRatio is the batch's cost ÷ the same calls' live cost; 0 when either
// is unknown.
func (b batchRun) costRatio() float64 {
	c := b.batch.Cost
	if c == nil || c.Micros == nil || c.LiveMicros == nil || *c.LiveMicros == 0 {
		return 0
	}
	return float64(*c.Micros) / float64(*c.LiveMicros)
}

// batchItems is an n-item batch's JSONL body: the same questions for every
// run with this tag.
func batchItems(tag string, n int) []byte {
	var body bytes.Buffer
	for i := range n {
		fmt.Fprintf(&body, `{"custom_id":"c%d","question":"provider %s-%d: what is the capital of France?"}`+"\n", i, tag, i)
	}
	return body.Bytes()
}

// batchRun submits an n-item batch in mode (provider: chunks of at most
// maxRequests) to a fresh metered stack on lm with extraEnv, waits for its
// end and measures it; the stack is stopped after, so that its idle loops
// do not run into the next run's window.
func (s *scope) batchRun(ctx context.Context, lm *benchkit.LM, mode jobs.BatchMode, tag string, n, maxRequests int, extraEnv ...string) (batchRun, error) {
	run := batchRun{mode: mode, n: n, maxRequests: maxRequests}
	env := append([]string{fmt.Sprintf("BATCH_CONCURRENCY=%d", providerSlots), "GODEBUG=gctrace=1"}, extraEnv...)
	if mode == jobs.BatchModeProvider {
		env = append(env, "PROVIDER_POLL_INTERVAL="+providerPoll.String(), "PROVIDER_POLL_MAX="+providerPoll.String(),
			fmt.Sprintf("PROVIDER_MAX_REQUESTS=%d", run.maxRequests))
	}
	st, err := s.meteredStack(ctx, lm, providerSlots, env...)
	if err != nil {
		return run, err
	}
	defer func() {
		_ = st.api.Stop(30 * time.Second)
		_ = st.worker.Stop(30 * time.Second)
	}()
	idle := s.pickDur(5*time.Second, 2*time.Second)
	idle0, err := st.meter.Read(ctx)
	if err != nil {
		return run, err
	}
	if err := sleepFor(ctx, idle); err != nil {
		return run, err
	}
	idle1, err := st.meter.Read(ctx)
	if err != nil {
		return run, err
	}
	pid := st.worker.PID()
	if run.idleRSS, err = benchkit.RSS(pid); err != nil {
		return run, err
	}
	if err := benchkit.ResetPeakRSS(pid); err != nil {
		return run, err
	}
	gc0, _, _ := benchkit.LastGC(st.worker.Output())
	body := batchItems(tag, n)
	calls0, up0 := lm.Calls(), lm.Uploaded()
	r0, err := st.meter.Read(ctx)
	if err != nil {
		return run, err
	}
	id, err := submitBatch(ctx, st.client, mode, body)
	if err != nil {
		return run, err
	}
	if run.batch, run.phases, err = waitBatch(ctx, st.client, id); err != nil {
		return run, err
	}
	r1, err := st.meter.Read(ctx)
	if err != nil {
		return run, err
	}
	run.wall = r1.At.Sub(r0.At)
	if run.peakRSS, err = benchkit.PeakRSS(pid); err != nil {
		return run, err
	}
	run.liveCalls, run.uploaded = lm.Calls()-calls0, lm.Uploaded()-up0
	run.gc, _ = benchkit.PeakGC(st.worker.Output(), gc0) // none: zero, shown as such
	if run.batchLines, run.chunks, err = providerLines(ctx, lm, id); err != nil {
		return run, err
	}
	run.cost = benchkit.CostPerJob(r0, r1, idle0, idle1, n)
	if run.batch.Status != jobs.BatchCompleted || run.batch.Counts.Completed != n {
		return run, fmt.Errorf("batch %s ended %s with %d of %d items completed: %s", id, run.batch.Status, run.batch.Counts.Completed, n, run.summary())
	}
	return run, nil
}

// submitBatch is POST /v1/batches?mode=mode with a JSONL body; it returns
// the batch's id.
func submitBatch(ctx context.Context, c *benchkit.Client, mode jobs.BatchMode, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+"/v1/batches?mode="+url.QueryEscape(string(mode)), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("submit batch: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("submit batch: %w", err)
	}
	var created providerView
	if resp.StatusCode/100 != 2 || json.Unmarshal(raw, &created) != nil || created.ID == "" {
		return "", fmt.Errorf("submit batch: HTTP %d %.300s", resp.StatusCode, raw)
	}
	return created.ID, nil
}

// waitBatch polls batch id until it is done (see providerView.done), and
// notes when it first saw each provider phase.
func waitBatch(ctx context.Context, c *benchkit.Client, id string) (providerView, []phaseSeen, error) {
	t0 := time.Now()
	var phases []phaseSeen
	for {
		var v providerView
		if err := c.Do(ctx, http.MethodGet, "/v1/batches/"+id, nil, http.StatusOK, &v); err != nil {
			return v, phases, fmt.Errorf("get batch %s: %w", id, err)
		}
		if p := v.Provider; p != nil && (len(phases) == 0 || phases[len(phases)-1].phase != p.Phase) {
			phases = append(phases, phaseSeen{p.Phase, time.Since(t0)})
		}
		if v.done() {
			return v, phases, nil
		}
		if err := sleepFor(ctx, 100*time.Millisecond); err != nil {
			return v, phases, fmt.Errorf("wait for batch %s (%s, %+v): %w", id, v.Status, v.Counts, err)
		}
	}
}

// providerLines is, as the fake LM counts them, the request lines answered
// by the provider batches of our batch id (their qaqueue_batch metadata),
// and how many such batches there are.
func providerLines(ctx context.Context, lm *benchkit.LM, id string) (lines int64, batches int, err error) {
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	after := ""
	for {
		u := lm.URL() + "/batches?limit=100"
		if after != "" {
			u += "&after=" + url.QueryEscape(after)
		}
		var page struct {
			Data []struct {
				ID            string            `json:"id"`
				RequestCounts map[string]int64  `json:"request_counts"`
				Metadata      map[string]string `json:"metadata"`
			} `json:"data"`
			HasMore bool `json:"has_more"`
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set("Authorization", "Bearer x")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, 0, fmt.Errorf("list the fake's batches: %w", err)
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("list the fake's batches: %w", err)
		}
		for _, b := range page.Data {
			if b.Metadata["qaqueue_batch"] == id {
				lines += b.RequestCounts["completed"] + b.RequestCounts["failed"]
				batches++
			}
		}
		if !page.HasMore || len(page.Data) == 0 {
			return lines, batches, nil
		}
		after = page.Data[len(page.Data)-1].ID
	}
}

// providerRows adds the scenario's rows: each provider figure beside the
// live run's and its goal.
func providerRows(r *scenarioResult, live, small, prov batchRun) {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	perItem := func(d time.Duration, n int) float64 { return us(d) / float64(max(n, 1)) }
	liveName := fmt.Sprintf("live, %d items", live.n)

	r.row("worker CPU per item", us(prov.cost.CPU["worker"]), "µs").base(liveName, us(live.cost.CPU["worker"])).atMost(us(live.cost.CPU["worker"]))
	r.row("API CPU per item", us(prov.cost.CPU["api"]), "µs").base(liveName, us(live.cost.CPU["api"]))
	r.row("Redis CPU per item", us(prov.cost.CPU["redis"]), "µs").base(liveName, us(live.cost.CPU["redis"]))
	r.row("Redis commands per item", benchkit.Total(prov.cost.Commands), "cmd").base(liveName, benchkit.Total(live.cost.Commands)).atMost(benchkit.Total(live.cost.Commands))
	r.row("wall time, submit → ended, per item", perItem(prov.wall, prov.n), "µs").base(liveName, perItem(live.wall, live.n))
	r.row("wall time, submit → ended", prov.wall.Seconds(), "s").base(liveName, live.wall.Seconds())
	r.row("worker allocations per item", prov.cost.Mallocs["worker"], "allocs").base(liveName, live.cost.Mallocs["worker"])
	r.row("peak worker RSS", mib(prov.peakRSS), "MiB").base(liveName, mib(live.peakRSS))
	r.row(fmt.Sprintf("peak worker RSS, provider, %d items", small.n), mib(small.peakRSS), "MiB").base("idle, before the submit", mib(small.idleRSS))
	growth := 0.0
	if d := prov.n - small.n; d > 0 {
		growth = mib(prov.peakRSS-small.peakRSS) / float64(d) * 1000
	}
	r.row(fmt.Sprintf("peak worker RSS growth per 1,000 items (%d → %d)", small.n, prov.n), growth, "MiB").atMost(goalProviderRSSPer1k)
	r.row("peak worker Go heap (at a GC's start)", prov.gc.HeapMB, "MB").base(liveName, live.gc.HeapMB)
	r.row(fmt.Sprintf("peak worker Go heap, provider, %d items", small.n), small.gc.HeapMB, "MB")
	heapGrowth := 0.0
	if d := prov.n - small.n; d > 0 {
		heapGrowth = (prov.gc.HeapMB - small.gc.HeapMB) / float64(d) * 1000
	}
	r.row(fmt.Sprintf("peak worker Go heap growth per 1,000 items (%d → %d)", small.n, prov.n), heapGrowth, "MB").atMost(goalProviderRSSPer1k)
	if prov.n > 0 {
		r.row("request bytes uploaded per item", float64(prov.uploaded)/float64(prov.n), "B")
	}
	r.row("live LM calls (chat completions)", float64(prov.liveCalls), "calls").base(liveName, float64(live.liveCalls)).equals(0)
	r.row("provider batch lines answered", float64(prov.batchLines), "lines").base("items", float64(prov.n)).equals(float64(prov.n))
	r.row("provider batches (chunks)", float64(prov.chunks), "batches").atLeast(2)
	var provCalls, calls, micros, liveMicros float64
	if c := prov.batch.Cost; c != nil {
		provCalls, calls = float64(c.ProviderCalls), float64(c.ProviderCalls+c.LiveCalls)
		if c.Micros != nil && c.LiveMicros != nil {
			micros, liveMicros = float64(*c.Micros), float64(*c.LiveMicros)
		}
	}
	r.row("cost report: provider calls", provCalls, "calls").equals(float64(prov.n))
	r.row("cost per 1,000 items at batch price", micros/float64(max(prov.n, 1))*1000, "µ$").base("the same calls at live price", liveMicros/float64(max(prov.n, 1))*1000)
	ratio := r.row("cost ÷ live cost", prov.costRatio(), "×")
	slack := 0.0
	if liveMicros > 0 {
		slack = costRoundingPerCall * calls / liveMicros
	}
	met := liveMicros > 0 && math.Abs(ratio.Value-goalProviderCostRatio) <= slack
	ratio.Goal, ratio.Met = fmt.Sprintf("= %g ± %.4f (rounding)", goalProviderCostRatio, slack), &met
}
