package main

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
)

func arm(name string, rate float64, apiUS, workerUS int, cmds float64, jobs int64, exported benchkit.OTLPCounts) tracingArm {
	return tracingArm{name: name, jobs: jobs, exported: exported, m: measured{n: jobs, rate: rate, cost: benchkit.Cost{
		Commands: map[string]float64{"evalsha": cmds},
		CPU:      map[string]time.Duration{"api": time.Duration(apiUS) * time.Microsecond, "worker": time.Duration(workerUS) * time.Microsecond},
	}}}
}

// rowsOf indexes a result's rows by metric.
func rowsOf(r *scenarioResult) map[string]benchRow {
	rows := map[string]benchRow{}
	for _, w := range r.Rows {
		rows[w.Metric] = w
	}
	return rows
}

// Tracing off's CPU and commands per job are held to the previous release
// within the noise allowance (jobs/s shown beside it); tracing on is reported beside off, with
// what it exported per job.
func TestTracingRows(t *testing.T) {
	t.Parallel()
	base := arm("previous release, tracing off", 1000, 200, 400, 30, 100, benchkit.OTLPCounts{})
	off := arm("tracing off", 950, 215, 500, 30, 100, benchkit.OTLPCounts{})
	on := arm("tracing on", 800, 260, 520, 30, 200, benchkit.OTLPCounts{Requests: 4, Bytes: 300000, Spans: 1200})
	r := &scenarioResult{}
	tracingRows(r, &base, off, on)
	rows := rowsOf(r)
	for metric, met := range map[string]bool{
		"API CPU per job, tracing off":        true,  // 215 ≤ 220
		"worker CPU per job, tracing off":     false, // 500 > 440
		"Redis commands per job, tracing off": true,
	} {
		if w, ok := rows[metric]; !ok || w.Met == nil || *w.Met != met {
			t.Errorf("%s: %+v, want met=%v", metric, w, met)
		}
	}
	for metric, want := range map[string]float64{
		"spans exported per job, tracing on":        6,    // 1200 spans ÷ 200 jobs
		"bytes exported per job, tracing on":        1500, // 300000 B ÷ 200 jobs
		"API + worker CPU per job added by tracing": 65,
		"worker CPU per job, tracing on":            520,
	} {
		if w := rows[metric]; math.Abs(w.Value-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", metric, w.Value, want)
		}
	}
	if w := rows["jobs/s, tracing off"]; w.Baseline == nil || *w.Baseline != 1000 || w.Met != nil {
		t.Errorf("jobs/s, tracing off, is shown beside the previous release, not judged: %+v", w)
	}
	if w := rows["worker CPU per job, tracing on"]; w.Baseline == nil || *w.Baseline != 500 || w.Met != nil {
		t.Errorf("tracing on is reported beside tracing off, without a goal: %+v", w)
	}
	if slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "0 spans") }) {
		t.Errorf("spans were exported, yet a note says none: %q", r.Notes)
	}
}

// Without --qa-base the off arm has no goal; a qa that exports nothing is
// said plainly.
func TestTracingRowsNothingExported(t *testing.T) {
	t.Parallel()
	off := arm("tracing off", 950, 215, 500, 30, 100, benchkit.OTLPCounts{})
	on := arm("tracing on", 940, 216, 505, 30, 100, benchkit.OTLPCounts{})
	r := &scenarioResult{}
	tracingRows(r, nil, off, on)
	rows := rowsOf(r)
	if w := rows["jobs/s, tracing off"]; w.Met != nil || w.Baseline != nil {
		t.Errorf("no --qa-base, yet tracing off has a baseline or goal: %+v", w)
	}
	if w := rows["spans exported per job, tracing on"]; w.Value != 0 {
		t.Errorf("spans per job %v, want 0", w.Value)
	}
	if !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "0 spans exported with tracing on") }) {
		t.Errorf("no note says 0 spans were exported: %q", r.Notes)
	}
}

// The tracing scenario, run small against a real redis-server, qa api and
// qa worker (built from the checkout) and the in-process sink: every figure
// is in the table, tracing off exported nothing, and tracing on exported
// spans (or says plainly that this qa exports none).
func TestTracingScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/qa and runs two stacks")
	}
	ctx := context.Background()
	var progress bytes.Buffer
	b, cleanup, err := newBench(ctx, true, "", &progress)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	t.Cleanup(cleanup)
	s := &scope{b: b, name: "tracing"}
	r, err := benchTracing(ctx, s)
	s.close()
	if err != nil {
		t.Fatalf("tracing scenario: %v\n%s", err, progress.String())
	}
	rows := rowsOf(r)
	for _, metric := range []string{
		"jobs/s, tracing off", "jobs/s, tracing on", "API CPU per job, tracing on", "worker CPU per job, tracing on",
		"Redis commands per job, tracing on", "spans exported per job, tracing on", "bytes exported per job, tracing on",
	} {
		w, ok := rows[metric]
		if !ok || math.IsNaN(w.Value) || math.IsInf(w.Value, 0) || w.Value < 0 {
			t.Errorf("%s: %+v", metric, w)
		}
	}
	if w := rows["jobs/s, tracing on"]; w.Value <= 0 {
		t.Errorf("tracing on ran no job: %+v", w)
	}
	spans, bytesPerJob := rows["spans exported per job, tracing on"].Value, rows["bytes exported per job, tracing on"].Value
	said := slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "0 spans exported with tracing on") })
	if spans == 0 && !said || spans > 0 && (bytesPerJob <= 0 || said) {
		t.Errorf("spans per job %v, bytes per job %v, notes %q", spans, bytesPerJob, r.Notes)
	}
}

// An arm's two windows add up: jobs, the rate over their total length, and
// each cost per job weighted by its window's jobs.
func TestTracingArmAdd(t *testing.T) {
	t.Parallel()
	var a tracingArm
	a.add(arm("", 100, 300, 600, 40, 200, benchkit.OTLPCounts{}).m) // 200 jobs in 2 s
	a.add(arm("", 300, 100, 200, 20, 600, benchkit.OTLPCounts{}).m) // 600 jobs in 2 s
	a.add(measured{})                                               // an empty window: nothing
	if a.m.n != 800 || math.Abs(a.m.rate-200) > 1e-9 || a.wall != 4*time.Second {
		t.Errorf("n %d, rate %v, wall %v; want 800 jobs at 200/s over 4s", a.m.n, a.m.rate, a.wall)
	}
	if a.m.cost.CPU["api"] != 150*time.Microsecond || a.m.cost.CPU["worker"] != 300*time.Microsecond || a.m.cost.Commands["evalsha"] != 25 {
		t.Errorf("cost %+v; want api 150µs, worker 300µs, 25 commands (weighted by jobs)", a.m.cost)
	}
}

func TestTracingOrder(t *testing.T) {
	t.Parallel()
	if got := tracingOrder([]string{"base", "off", "on"}); !slices.Equal(got, []string{"base", "off", "on", "on", "off", "base"}) {
		t.Errorf("tracingOrder = %q", got)
	}
	arms := []*tracingArm{{name: "previous release, tracing off"}, {name: "tracing off"}, {name: "tracing on"}}
	if got := armOrder(arms); got != "previous release, off, on, on, off, previous release" {
		t.Errorf("armOrder = %q", got)
	}
}

func TestTracingEnv(t *testing.T) {
	t.Parallel()
	want := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_TRACES_SAMPLER=always_on"}
	if got := tracingEnv("http://127.0.0.1:4318"); !slices.Equal(got, want) {
		t.Errorf("tracingEnv = %q, want %q", got, want)
	}
}

// --qa-base must name a qa that runs: anything else stops the bench before
// any scenario, saying which flag.
func TestFindBaseQA(t *testing.T) {
	t.Parallel()
	var progress bytes.Buffer
	for _, path := range []string{"/nonexistent/qa-base", "/bin/false"} {
		if _, _, err := findBaseQA(context.Background(), path, &progress); err == nil || !strings.Contains(err.Error(), "--qa-base") {
			t.Errorf("findBaseQA(%s) = %v, want an error naming --qa-base", path, err)
		}
	}
}
