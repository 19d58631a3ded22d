package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// goalTracingNoise is how far a figure of the tracing-off arm may be from
// the previous release's (--qa-base) and still count as "within noise"
// (issue 18: no regression with tracing off): the spread of back-to-back
// runs of the same binary on the shared 2-core machine, where CPU per job
// moves by several per cent from run to run.
const goalTracingNoise = 0.10

// tracingEnv turns tracing on in a qa process, every span sampled and
// exported over OTLP/HTTP to endpoint (issue 18's contract variables).
func tracingEnv(endpoint string) []string {
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_SAMPLER=always_on",
	}
}

// tracingArm is one arm's run: the jobs it measured, their rate and cost,
// and what the sink received from its processes.
type tracingArm struct {
	name string
	m    measured
	// jobs counts every job the arm's processes ran, warm-up included: the
	// spans they exported are of all of them.
	jobs     int64
	exported benchkit.OTLPCounts
}

// perJob is n ÷ the arm's jobs.
func (a tracingArm) perJob(n int64) float64 { return float64(n) / float64(max(a.jobs, 1)) }

// benchTracing (issue 18's "Done when": no regression with tracing off;
// the cost per job with tracing on reported): the budget scenario's job
// (POST /v1/jobs, then GET ?wait=, instant fake LM, budgetClients
// closed-loop clients), on a fresh stack per arm: tracing off, the same
// binary with tracing on (always_on, OTLP/HTTP to a sink in this process),
// and with --qa-base the previous release with tracing off, the
// no-regression baseline.
func benchTracing(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	dur := s.pickDur(15*time.Second, 4*time.Second)
	lm, err := s.lm(fakelm.Config{})
	if err != nil {
		return r, err
	}
	sink, err := benchkit.StartOTLPSink()
	if err != nil {
		return r, err
	}
	s.onClose(func() { _ = sink.Close() })
	tag := strconv.FormatInt(time.Now().UnixNano(), 36)

	var base *tracingArm
	if s.b.baseBin != "" {
		a, err := s.runTracingArm(ctx, "previous release, tracing off", s.b.baseBin, lm, sink, dur, tag+" base")
		if err != nil {
			return r, fmt.Errorf("--qa-base: %w", err)
		}
		base = &a
	}
	off, err := s.runTracingArm(ctx, "tracing off", s.b.bin, lm, sink, dur, tag+" off")
	if err != nil {
		return r, err
	}
	on, err := s.runTracingArm(ctx, "tracing on", s.b.bin, lm, sink, dur, tag+" on", tracingEnv(sink.Endpoint())...)
	if err != nil {
		return r, err
	}
	tracingRows(r, base, off, on)
	r.note("Each arm: a fresh Redis database, worker (WORKER_CONCURRENCY=%d) and API; %d closed-loop clients, 1 s of warm-up, then %v measured: POST /v1/jobs, GET ?wait= until completed, non-streamed, unique questions, instant fake LM. Per-job figures charge the whole measured window to its jobs (CPU: each process's utime+stime; commands: INFO commandstats). Tracing on: %s, exporting to an OTLP/HTTP sink in qa-bench; spans and bytes are what it received from the arm's processes, stopped (so flushed) before it is read, ÷ every job they ran, warm-up included.", budgetClients, budgetClients, dur, strings.Join(tracingEnv("http://127.0.0.1:<port>"), " "))
	if base == nil {
		r.note("No --qa-base: the tracing-off figures have no previous-release baseline. Build one from the previous commit and pass it: git worktree add /tmp/base <commit> && (cd /tmp/base && go build -o /dev/shm/qa-base ./cmd/qa) && qa-bench --qa-base /dev/shm/qa-base tracing.")
	} else {
		r.note("Previous release: %s (%s), tracing off; the goal for tracing off is within %.0f%% of it (run-to-run noise).", s.b.baseBin, s.b.baseVersion, goalTracingNoise*100)
	}
	return r, nil
}

// runTracingArm measures one arm on a fresh metered stack of bin with env,
// then stops the stack, which flushes its spans, and reads what the sink
// received meanwhile.
func (s *scope) runTracingArm(ctx context.Context, name, bin string, lm *benchkit.LM, sink *benchkit.OTLPSink, dur time.Duration, tag string, env ...string) (tracingArm, error) {
	a := tracingArm{name: name}
	sent0 := sink.Counts()
	st, err := s.meteredStackOf(ctx, bin, lm, budgetClients, env...)
	if err != nil {
		return a, fmt.Errorf("%s: %w", name, err)
	}
	stop := func() {
		_ = st.api.Stop(30 * time.Second)
		_ = st.worker.Stop(30 * time.Second)
	}
	warm, err := closedLoop(ctx, budgetClients, time.Second, submitAndWait(st.client, tag+" warm", false))
	if err != nil {
		stop()
		return a, fmt.Errorf("%s: %w", name, err)
	}
	none, err := st.meter.Read(ctx) // no idle window: charge everything
	if err != nil {
		stop()
		return a, err
	}
	if a.m, err = measure(ctx, st.meter, none, none, budgetClients, dur, submitAndWait(st.client, tag, false)); err != nil {
		stop()
		return a, fmt.Errorf("%s: %w", name, err)
	}
	stop()
	a.jobs = warm + a.m.n
	a.exported = sink.Counts().Sub(sent0)
	return a, nil
}

// tracingRows adds the scenario's rows: tracing off beside the previous
// release (when given) with the no-regression goal, tracing on beside
// tracing off, and what tracing on exported.
func tracingRows(r *scenarioResult, base *tracingArm, off, on tracingArm) {
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	cmds := func(a tracingArm) float64 { return benchkit.Total(a.m.cost.Commands) }
	figures := []struct {
		metric, unit string
		of           func(tracingArm) float64
		higherBetter bool
	}{
		{"jobs/s", "jobs/s", func(a tracingArm) float64 { return a.m.rate }, true},
		{"API CPU per job", "µs", func(a tracingArm) float64 { return us(a.m.cost.CPU["api"]) }, false},
		{"worker CPU per job", "µs", func(a tracingArm) float64 { return us(a.m.cost.CPU["worker"]) }, false},
		{"Redis commands per job", "cmd", cmds, false},
	}
	for _, f := range figures {
		w := r.row(f.metric+", tracing off", f.of(off), f.unit)
		if base != nil {
			b := f.of(*base)
			w.base(base.name, b)
			if f.higherBetter {
				w.atLeast(b * (1 - goalTracingNoise))
			} else {
				w.atMost(b * (1 + goalTracingNoise))
			}
		}
	}
	for _, f := range figures {
		r.row(f.metric+", tracing on", f.of(on), f.unit).base(off.name, f.of(off))
	}
	added := us(on.m.cost.CPU["api"]+on.m.cost.CPU["worker"]) - us(off.m.cost.CPU["api"]+off.m.cost.CPU["worker"])
	r.row("API + worker CPU per job added by tracing", added, "µs")
	r.row("spans exported per job, tracing on", on.perJob(on.exported.Spans), "spans")
	r.row("bytes exported per job, tracing on", on.perJob(on.exported.Bytes), "B")
	r.row("exports (OTLP requests), tracing on", float64(on.exported.Requests), "requests")
	r.row("spans exported, tracing off", float64(off.exported.Spans), "spans").equals(0)
	if on.exported.Rejected > 0 || off.exported.Rejected > 0 {
		r.note("the sink refused %d requests (not POST /v1/traces, or not an ExportTraceServiceRequest)", on.exported.Rejected+off.exported.Rejected)
	}
	if on.exported.Spans == 0 {
		r.note("0 spans exported with tracing on: this qa binary does not trace yet (or its exports failed: %d requests reached the sink, %d refused); the tracing-on figures are the cost of the variables alone.", on.exported.Requests, on.exported.Rejected)
	}
	r.detail("tracing_on_exported", on.exported)
	r.detail("jobs", map[string]int64{"off": off.jobs, "on": on.jobs})
}

// findBaseQA checks --qa-base: a qa binary that runs, and what its `qa
// version` says.
func findBaseQA(ctx context.Context, path string, progress io.Writer) (bin, version string, err error) {
	if bin, err = exec.LookPath(path); err != nil {
		return "", "", fmt.Errorf("find the --qa-base binary: %w", err)
	}
	if bin, err = filepath.Abs(bin); err != nil { // the processes run in the bench's directory
		return "", "", err
	}
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "", "", fmt.Errorf("run %s version (--qa-base): %w", bin, err)
	}
	version = strings.TrimSpace(string(out))
	fmt.Fprintf(progress, "qa-bench: the previous release (--qa-base): %s (%s)\n", bin, version)
	return bin, version, nil
}
