package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/internal/redisproc"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/redis/go-redis/v9"
)

// benchPickup is worker/pickup_test.go's BenchmarkPickup (the same
// benchkit.MeasurePickup), each variant on a redis-server of its own.
func benchPickup(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	if s.b.embedded {
		r.Skipped = "needs redis-server (idle commands are read from its INFO)"
		return r, nil
	}
	samples := s.pick(100, 30)
	window := 5 * time.Second // one asynq heartbeat period
	results := map[string]benchkit.PickupResult{}
	for _, v := range []benchkit.PickupVariant{
		benchkit.PickupWorker("worker_blocking_20ms", false),
		benchkit.PickupBareAsynq("bare_asynq_5ms", 5*time.Millisecond),
	} {
		dir := s.b.dir + "/pickup-" + v.Name
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return r, err
		}
		srv, err := redisproc.Start(dir)
		if err != nil {
			return r, err
		}
		res, err := benchkit.MeasurePickup(ctx, v, &redis.Options{Addr: srv.Addr}, samples, window)
		srv.Stop()
		if err != nil {
			return r, fmt.Errorf("%s: %w", v.Name, err)
		}
		s.logf("%s: p50 %.2f ms, p99 %.2f ms, idle %.1f commands/s (%s)", v.Name, benchkit.MS(res.Latency.P50), benchkit.MS(res.Latency.P99), res.IdleCmds, res.IdleDetails)
		results[v.Name] = res
	}
	ours, bare := results["worker_blocking_20ms"], results["bare_asynq_5ms"]
	r.detail("variants", results)
	r.row("pickup p50", benchkit.MS(ours.Latency.P50), "ms").base("bare asynq 5 ms poll", benchkit.MS(bare.Latency.P50)).atMost(1)
	r.row("pickup p99", benchkit.MS(ours.Latency.P99), "ms").base("bare asynq 5 ms poll", benchkit.MS(bare.Latency.P99))
	r.row("idle Redis commands/s per worker", ours.IdleCmds, "cmd/s").base("bare asynq 5 ms poll", bare.IdleCmds).atMost(10)
	r.note("%d samples per variant, random 20–80 ms gaps; enqueue (asynq's script sent) → handler start; ours also counts payload decoding and the record's start script. Idle: %s (ours) vs %s (bare).",
		samples, ours.IdleDetails, bare.IdleDetails)
	return r, nil
}

// benchOverhead: submit → completed with an instant LM, against the LM call
// alone.
func benchOverhead(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	url, _, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	lm, err := s.lm(fakelm.Config{})
	if err != nil {
		return r, err
	}
	st := s.stack(url, lm)
	if _, _, err := s.worker(ctx, st); err != nil {
		return r, err
	}
	_, c, err := s.api(ctx, st)
	if err != nil {
		return r, err
	}
	n := s.pick(300, 60)
	tag := time.Now().UnixNano()
	direct := make([]time.Duration, 0, n)
	jobsLat := make([]time.Duration, 0, n)
	predictLat := make([]time.Duration, 0, n)
	for i := range n + 10 { // the first 10 of each warm up
		q := fmt.Sprintf("overhead %d-%d: why is the sky blue?", tag, i)
		d, err := directCall(ctx, lm.URL(), q)
		if err != nil {
			return r, fmt.Errorf("direct LM call: %w", err)
		}
		t0 := time.Now()
		id, err := c.Submit(ctx, q+" (jobs)", false)
		if err != nil {
			return r, err
		}
		j, err := c.WaitEnd(ctx, id)
		if err != nil {
			return r, err
		}
		if j.Status != "completed" {
			return r, fmt.Errorf("job %s %s: %+v", id, j.Status, j.Error)
		}
		dj := time.Since(t0)
		t0 = time.Now()
		if err := c.Do(ctx, http.MethodPost, "/predict", map[string]any{"question": q + " (predict)"}, http.StatusOK, nil); err != nil {
			return r, err
		}
		dp := time.Since(t0)
		if i >= 10 {
			direct, jobsLat, predictLat = append(direct, d), append(jobsLat, dj), append(predictLat, dp)
		}
	}
	ds, js, ps := benchkit.Summarize(direct), benchkit.Summarize(jobsLat), benchkit.Summarize(predictLat)
	r.detail("direct_lm", ds)
	r.detail("v1_jobs", js)
	r.detail("predict", ps)
	r.row("POST /v1/jobs → completed p50", benchkit.MS(js.P50), "ms").base("LM call alone", benchkit.MS(ds.P50)).atMost(10)
	r.row("POST /v1/jobs → completed p99", benchkit.MS(js.P99), "ms").base("LM call alone", benchkit.MS(ds.P99)).atMost(30)
	r.row("POST /predict p50", benchkit.MS(ps.P50), "ms").base("LM call alone", benchkit.MS(ds.P50)).atMost(10)
	r.row("POST /predict p99", benchkit.MS(ps.P99), "ms").base("LM call alone", benchkit.MS(ds.P99)).atMost(30)
	r.note("%d sequential jobs each way, unique questions (no cache hits); /v1/jobs is POST then GET ?wait= (long-poll woken by pub/sub), timed by the client, so it includes two HTTP round trips.", n)
	return r, nil
}

// directCall is one non-streaming chat call straight to the LM.
func directCall(ctx context.Context, base, q string) (time.Duration, error) {
	body, _ := json.Marshal(map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": q}}})
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct{ Choices []any }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d: %v", resp.StatusCode, err)
	}
	return time.Since(t0), nil
}

// directTTFT is the time to the first content chunk of a streamed chat call
// straight to the LM.
func directTTFT(ctx context.Context, base, q string) (time.Duration, error) {
	body, _ := json.Marshal(map[string]any{"model": "gpt-4o-mini", "stream": true, "messages": []map[string]string{{"role": "user", "content": q}}})
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &ch) == nil && len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			return time.Since(t0), nil
		}
	}
	return 0, fmt.Errorf("no content chunk (status %d): %v", resp.StatusCode, sc.Err())
}

// benchTTFT: the first answer token through the queue, minus the LM's own
// time to first token in the same run.
func benchTTFT(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	url, _, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	const ttft = 100 * time.Millisecond
	lm, err := s.lm(fakelm.Config{TTFT: ttft})
	if err != nil {
		return r, err
	}
	st := s.stack(url, lm)
	if _, _, err := s.worker(ctx, st); err != nil {
		return r, err
	}
	_, c, err := s.api(ctx, st)
	if err != nil {
		return r, err
	}
	n := s.pick(60, 20)
	tag := time.Now().UnixNano()
	var direct, events, stream []time.Duration
	for i := range n + 3 {
		q := fmt.Sprintf("ttft %d-%d: why is the sky blue?", tag, i)
		d, err := directTTFT(ctx, lm.URL(), q)
		if err != nil {
			return r, fmt.Errorf("direct LM stream: %w", err)
		}
		// /v1/jobs/{id}/events
		t0 := time.Now()
		id, err := c.Submit(ctx, q+" (events)", true)
		if err != nil {
			return r, err
		}
		var first time.Time
		err = c.Events(ctx, id, func(f benchkit.Frame) bool {
			if f.Event == "token" && first.IsZero() {
				var td benchkit.TokenData
				if json.Unmarshal([]byte(f.Data), &td) == nil && td.Field == "answer" {
					first = f.At
				}
			}
			return f.Event != "completed" && f.Event != "failed"
		})
		if err != nil || first.IsZero() {
			return r, fmt.Errorf("events of %s: no answer token (%v)", id, err)
		}
		de := first.Sub(t0)
		// /predict/stream
		t0 = time.Now()
		first = time.Time{}
		err = c.Stream(ctx, http.MethodPost, "/predict/stream", map[string]any{"question": q + " (stream)"}, func(f benchkit.Frame) bool {
			var d struct{ Type, Field string }
			if json.Unmarshal([]byte(f.Data), &d) == nil && d.Type == "token" && d.Field == "answer" && first.IsZero() {
				first = f.At
			}
			return f.Data != "[DONE]"
		})
		if err != nil || first.IsZero() {
			return r, fmt.Errorf("/predict/stream: no answer token (%v)", err)
		}
		ds := first.Sub(t0)
		if i >= 3 {
			direct, events, stream = append(direct, d), append(events, de), append(stream, ds)
		}
	}
	dsum := benchkit.Summarize(direct)
	minus := func(xs []time.Duration) benchkit.Summary {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = x - dsum.P50
		}
		return benchkit.Summarize(out)
	}
	es, ss := minus(events), minus(stream)
	r.detail("direct_lm_ttft", dsum)
	r.detail("events_minus_lm_ttft", es)
	r.detail("predict_stream_minus_lm_ttft", ss)
	r.row("/v1/jobs/{id}/events TTFT − LM TTFT p50", benchkit.MS(es.P50), "ms").base("LM TTFT", benchkit.MS(dsum.P50)).atMost(10)
	r.row("/v1/jobs/{id}/events TTFT − LM TTFT p99", benchkit.MS(es.P99), "ms").base("LM TTFT p99", benchkit.MS(dsum.P99))
	r.row("/predict/stream TTFT − LM TTFT p50", benchkit.MS(ss.P50), "ms").base("LM TTFT", benchkit.MS(dsum.P50)).atMost(10)
	r.row("/predict/stream TTFT − LM TTFT p99", benchkit.MS(ss.P99), "ms").base("LM TTFT p99", benchkit.MS(dsum.P99))
	r.note("fakelm TTFT %v, then the rest at once; %d samples each; from the client's POST to the first token of the answer field, minus the LM's own p50 TTFT measured by a direct streamed call in the same run. /v1 includes the POST's round trip and opening the SSE stream.", ttft, n)
	return r, nil
}
