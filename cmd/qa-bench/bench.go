package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/internal/redisproc"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// benchScenario is one qa-bench scenario: it starts what it needs through
// the scope, measures, and returns rows (each figure beside its same-run
// baseline and its goal).
type benchScenario struct {
	name    string
	summary string
	run     func(ctx context.Context, s *scope) (*scenarioResult, error)
	// bound is how long the scenario may take in a full (and a quick) run.
	bound, quickBound time.Duration
}

func benchScenarios() []benchScenario {
	return []benchScenario{
		{"pickup", "idle pickup latency and idle Redis commands/s vs bare asynq at 5 ms", benchPickup, 2 * time.Minute, time.Minute},
		{"overhead", "submit → completed with an instant LM, /v1/jobs and /predict", benchOverhead, 2 * time.Minute, time.Minute},
		{"ttft", "first answer token through SSE minus the LM's own TTFT", benchTTFT, 2 * time.Minute, time.Minute},
		{"throughput", "jobs/s through the HTTP API vs the same-work baseline (gin, asynq, openai-go, a result key) and bare asynq, same clients and slots", benchThroughput, 3 * time.Minute, 2 * time.Minute},
		{"budget", "per-job budget: Redis commands, API/worker/Redis CPU and allocations per job, non-streamed and streamed", benchBudget, 3 * time.Minute, 2 * time.Minute},
		{"seed", "/predict at c=200 against a 200 ms LM: fraction of the ideal rate, CPU per request vs FastAPI's", benchSeed, 2 * time.Minute, time.Minute},
		{"concurrency", "one worker with N in-flight streaming LM calls of 2 s each", benchConcurrency, 3 * time.Minute, time.Minute},
		{"fanout", "N SSE subscribers of one job on one API process", benchFanout, 3 * time.Minute, time.Minute},
		{"batch", "POST /v1/batches ingest and drain vs bare asynq", benchBatch, 3 * time.Minute, time.Minute},
		{"ratelimit", "LM_RPM=R against an LM enforcing R/min as R/60 a second: busiest second, % of R, 429s", benchRateLimit, 2 * time.Minute, 2 * time.Minute},
		{"cache", "cache hit latency per layer; LM calls for duplicate questions", benchCache, 2 * time.Minute, time.Minute},
		{"load", "clients mixing submit, poll, SSE and /predict: 5xx, lost jobs, memory", benchLoad, 3 * time.Minute, time.Minute},
		{"provider", "the same batch live and ?mode=provider (fake Batch API): worker/API CPU, Redis commands and wall time per item, peak worker RSS at N and N/4, LM calls, cost at batch vs live price", benchProvider, 6 * time.Minute, 3 * time.Minute},
		{"swap", "a two-stage program's alias moved under load: switch time per API, failures, default program before/after", benchSwap, 2 * time.Minute, time.Minute},
		{"tracing", "jobs with tracing off (beside --qa-base, the previous release) and on (always_on, OTLP/HTTP to an in-process sink): jobs/s, CPU and Redis commands per job, spans and bytes exported per job", benchTracing, 3 * time.Minute, 2 * time.Minute},
	}
}

// benchRow is one figure of the report.
type benchRow struct {
	Scenario     string   `json:"scenario"`
	Metric       string   `json:"metric"`
	Value        float64  `json:"value"`
	Unit         string   `json:"unit"`
	Baseline     *float64 `json:"baseline,omitempty"`
	BaselineName string   `json:"baseline_name,omitempty"`
	Goal         string   `json:"goal,omitempty"`
	Met          *bool    `json:"met,omitempty"`
}

type scenarioResult struct {
	Name     string         `json:"name"`
	Rows     []benchRow     `json:"rows"`
	Notes    []string       `json:"notes,omitempty"`
	Details  map[string]any `json:"details,omitempty"`
	Skipped  string         `json:"skipped,omitempty"`
	Error    string         `json:"error,omitempty"`
	Duration float64        `json:"duration_seconds"`
}

func (r *scenarioResult) row(metric string, value float64, unit string) *benchRow {
	r.Rows = append(r.Rows, benchRow{Scenario: r.Name, Metric: metric, Value: value, Unit: unit})
	return &r.Rows[len(r.Rows)-1]
}

func (r *scenarioResult) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *scenarioResult) detail(k string, v any) {
	if r.Details == nil {
		r.Details = map[string]any{}
	}
	r.Details[k] = v
}

func (w *benchRow) base(name string, v float64) *benchRow {
	w.BaselineName, w.Baseline = name, &v
	return w
}

// atMost and atLeast set the goal and whether it was met.
func (w *benchRow) atMost(goal float64) *benchRow {
	met := w.Value <= goal
	w.Goal, w.Met = fmt.Sprintf("≤ %s", fmtNum(goal)), &met
	return w
}

func (w *benchRow) atLeast(goal float64) *benchRow {
	met := w.Value >= goal
	w.Goal, w.Met = fmt.Sprintf("≥ %s", fmtNum(goal)), &met
	return w
}

func (w *benchRow) equals(goal float64) *benchRow {
	met := w.Value == goal
	w.Goal, w.Met = fmt.Sprintf("= %s", fmtNum(goal)), &met
	return w
}

func fmtNum(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e15 && v > -1e15:
		return fmt.Sprintf("%d", int64(v))
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// bench is one qa-bench run's shared setup.
type bench struct {
	quick     bool
	bin       string
	qaVersion string
	dir       string
	redisAddr string
	redisSrv  *redisproc.Server
	embedded  bool
	nextDB    int
	progress  io.Writer
	// self is qa-bench's own executable, which runs the same-work baseline.
	self string
	// pins keeps the measured process apart from the load (taskset).
	pins benchkit.Pins
	// baseBin is --qa-base, the previous release's qa ("" when not given),
	// and baseVersion what its `qa version` says.
	baseBin, baseVersion string
}

// benchReport is the JSON report.
type benchReport struct {
	StartedAt time.Time         `json:"started_at"`
	Command   string            `json:"command"`
	Quick     bool              `json:"quick"`
	QA        string            `json:"qa"` // `qa version` of the binary measured
	Machine   map[string]string `json:"machine"`
	Scenarios []*scenarioResult `json:"scenarios"`
}

// runBench is `qa-bench [--scenarios a,b] [--quick] [--json FILE] [--qa PATH] [load]`.
func runBench(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa-bench", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	names := fs.String("scenarios", "", "comma-separated scenarios to run (default: all); see -list")
	quick := fs.Bool("quick", false, "a fast run: fewer samples, fewer clients, shorter windows")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	list := fs.Bool("list", false, "list the scenarios and exit")
	qaBin := fs.String("qa", "", "the qa binary to run as `qa api` / `qa worker` (default: the qa beside qa-bench, else one built from this checkout)")
	qaBase := fs.String("qa-base", "", "a qa binary of the previous release, the tracing scenario's no-regression baseline (see BENCHMARKS.md)")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: qa-bench [flags] [scenario ...]\n\nRuns each scenario against a redis-server on a free port, an in-process fake LM\nand `qa api` / `qa worker` processes, and prints every figure beside its\nsame-run baseline and its goal.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage // fs.Parse has said why
	}
	all := benchScenarios()
	if *list {
		for _, s := range all {
			fmt.Fprintf(e.stdout, "  %-12s %s\n", s.name, s.summary)
		}
		return nil
	}
	selected, err := selectScenarios(all, *names, fs.Args())
	if err != nil {
		fmt.Fprintln(e.stderr, "qa-bench:", err)
		return errUsage
	}
	b, cleanup, err := newBench(ctx, *quick, *qaBin, e.stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	if *qaBase != "" {
		if b.baseBin, b.baseVersion, err = findBaseQA(ctx, *qaBase, e.stderr); err != nil {
			return err
		}
	}

	rep := &benchReport{StartedAt: time.Now().UTC(), Command: "qa-bench " + strings.Join(args, " "), Quick: *quick, QA: b.qaVersion, Machine: machineInfo()}
	for _, sc := range selected {
		bound := sc.bound
		if *quick {
			bound = sc.quickBound
		}
		fmt.Fprintf(e.stderr, "qa-bench: %s (at most %v)…\n", sc.name, bound)
		sctx, cancel := context.WithTimeout(ctx, bound)
		s := &scope{b: b, name: sc.name}
		start := time.Now()
		res, err := sc.run(sctx, s)
		s.close()
		cancel()
		if res == nil {
			res = &scenarioResult{}
		}
		res.Name = sc.name
		for i := range res.Rows {
			res.Rows[i].Scenario = sc.name
		}
		if err != nil {
			res.Error = err.Error()
		}
		res.Duration = time.Since(start).Seconds()
		rep.Scenarios = append(rep.Scenarios, res)
		if ctx.Err() != nil {
			break
		}
	}
	printReport(e.stdout, rep)
	if *jsonOut != "" {
		buf, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(buf, '\n'), 0o644); err != nil {
			return fmt.Errorf("write --json: %w", err)
		}
		fmt.Fprintf(e.stderr, "qa-bench: report written to %s\n", *jsonOut)
	}
	return ctx.Err()
}

func selectScenarios(all []benchScenario, names string, positional []string) ([]benchScenario, error) {
	var want []string
	for _, n := range append(strings.Split(names, ","), positional...) {
		if n = strings.TrimSpace(n); n != "" {
			want = append(want, n)
		}
	}
	if len(want) == 0 {
		return all, nil
	}
	var out []benchScenario
	for _, n := range want {
		found := false
		for _, s := range all {
			if s.name == n {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (qa-bench -list)", n)
		}
	}
	return out, nil
}

// newBench raises the open-file limit, finds the qa binary (qaBin, see
// findQA) and starts the run's redis-server (or, without one, the embedded
// miniredis, loudly).
func newBench(ctx context.Context, quick bool, qaBin string, progress io.Writer) (*bench, func(), error) {
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintf(progress, "qa-bench: could not raise the open-file limit: %v\n", err)
	}
	dir, err := os.MkdirTemp("", "qa-bench-")
	if err != nil {
		return nil, nil, err
	}
	self, err := os.Executable()
	if err != nil {
		self = "" // then there is nothing beside it: findQA builds qa
	}
	bin, version, err := findQA(ctx, qaBin, self, dir, progress)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	b := &bench{quick: quick, bin: bin, qaVersion: version, dir: dir, progress: progress, self: self, pins: benchkit.DefaultPins()}
	var stop func()
	if _, err := exec.LookPath("redis-server"); err == nil {
		srv, err := redisproc.Start(dir)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, nil, err
		}
		b.redisAddr, b.redisSrv, stop = srv.Addr, srv, srv.Stop
	} else {
		fmt.Fprintln(progress, strings.Repeat("!", 78))
		fmt.Fprintln(progress, "qa-bench: redis-server NOT FOUND on PATH: using the embedded miniredis.\n  Its figures say nothing about a real Redis; scenarios that need a real\n  server are skipped. Install redis-server for a meaningful run.")
		fmt.Fprintln(progress, strings.Repeat("!", 78))
		m := miniredis.NewMiniRedis()
		m.ClockTTL(true)
		if err := m.Start(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, nil, err
		}
		b.redisAddr, b.embedded, stop = m.Addr(), true, m.Close
	}
	return b, func() { stop(); _ = os.RemoveAll(dir) }, nil
}

// raiseFileLimit raises the soft open-file limit to the hard one; the qa
// processes the bench starts inherit it.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return nil
}

// fileLimit is the soft open-file limit (0 when unknown).
func fileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}

func machineInfo() map[string]string {
	m := map[string]string{"go": runtime.Version(), "goos": runtime.GOOS, "goarch": runtime.GOARCH, "cpus": fmt.Sprint(runtime.NumCPU())}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			m["memory"] = strings.Join(strings.Fields(strings.TrimPrefix(line, "MemTotal:")), " ")
		}
	}
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		m["redis"] = strings.TrimSpace(string(out))
	}
	return m
}

func printReport(w io.Writer, rep *benchReport) {
	fmt.Fprintf(w, "\nqa-bench — %s, %s CPUs, %s, %s\n\n", rep.Machine["goos"]+"/"+rep.Machine["goarch"], rep.Machine["cpus"], rep.Machine["memory"], rep.Machine["go"])
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmetric\tvalue\tbaseline (same run)\tgoal\tmet")
	for _, s := range rep.Scenarios {
		if s.Skipped != "" {
			fmt.Fprintf(tw, "%s\tskipped\t\t%s\t\t\n", s.Name, s.Skipped)
		}
		if s.Error != "" {
			fmt.Fprintf(tw, "%s\tERROR\t\t%.100s\t\t\n", s.Name, strings.ReplaceAll(s.Error, "\n", " "))
		}
		for _, r := range s.Rows {
			base := ""
			if r.Baseline != nil {
				base = fmtNum(*r.Baseline) + " " + r.Unit + " (" + r.BaselineName + ")"
			}
			met := ""
			if r.Met != nil {
				met = map[bool]string{true: "met", false: "MISSED"}[*r.Met]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\n", s.Name, r.Metric, fmtNum(r.Value), r.Unit, base, r.Goal, met)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, s := range rep.Scenarios {
		for _, n := range s.Notes {
			fmt.Fprintf(w, "- %s: %s\n", s.Name, n)
		}
	}
}

// scope is what one scenario started; close stops it all, last first.
type scope struct {
	b       *bench
	name    string
	closers []func()
}

func (s *scope) onClose(f func()) { s.closers = append(s.closers, f) }

func (s *scope) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// pin keeps the scenario's measured process apart from the load: this
// process (the load generator and the fake LM) and Redis move to the pins'
// other CPUs until the scenario ends, and the stacks the caller starts with
// the returned pins put their measured process on Pins.Measured. The note
// says how, or why not (one CPU, no taskset).
func (s *scope) pin(ctx context.Context, r *scenarioResult) (benchkit.Pins, error) {
	p := s.b.pins
	r.note("%s", p.Note)
	if !p.On() {
		return p, nil
	}
	pids := []int{os.Getpid()}
	if !s.b.embedded {
		pid, err := benchkit.RedisPID(ctx, s.b.redisAddr)
		if err != nil {
			return p, err
		}
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		restore, err := p.Move(pid, p.Rest)
		if err != nil {
			return p, err
		}
		s.onClose(func() {
			if err := restore(); err != nil {
				s.logf("unpin: %v", err)
			}
		})
	}
	return p, nil
}

// db is a fresh database on the run's Redis: its URL and a client.
func (s *scope) db(ctx context.Context) (string, *redis.Client, error) {
	s.b.nextDB++
	idx := s.b.nextDB % redisproc.Databases
	if s.b.embedded {
		idx = s.b.nextDB % 16
	}
	c := redis.NewClient(&redis.Options{Addr: s.b.redisAddr, DB: idx, PoolSize: 200})
	if err := c.FlushDB(ctx).Err(); err != nil {
		_ = c.Close()
		return "", nil, err
	}
	s.onClose(func() { _ = c.Close() })
	return fmt.Sprintf("redis://%s/%d", s.b.redisAddr, idx), c, nil
}

func (s *scope) lm(cfg fakelm.Config) (*benchkit.LM, error) {
	lm, err := benchkit.StartLM(cfg)
	if err != nil {
		return nil, err
	}
	s.onClose(func() { _ = lm.Close() })
	return lm, nil
}

// stack is the qa processes' setup on redisURL and lm, plus env.
func (s *scope) stack(redisURL string, lm *benchkit.LM, env ...string) benchkit.Stack {
	return benchkit.Stack{Bin: s.b.bin, Dir: s.b.dir, Env: append(benchkit.BaseEnv(s.b.dir, redisURL, lm.URL()), env...)}
}

func (s *scope) api(ctx context.Context, st benchkit.Stack, env ...string) (*benchkit.Proc, *benchkit.Client, error) {
	p, base, err := st.StartAPI(ctx, env...)
	if err != nil {
		return nil, nil, err
	}
	c := benchkit.NewClient(base, 2048)
	s.onClose(func() { c.HTTP.CloseIdleConnections(); _ = p.Stop(30 * time.Second) })
	return p, c, nil
}

func (s *scope) worker(ctx context.Context, st benchkit.Stack, env ...string) (*benchkit.Proc, string, error) {
	p, metrics, err := st.StartWorker(ctx, env...)
	if err != nil {
		return nil, "", err
	}
	s.onClose(func() { _ = p.Stop(30 * time.Second) })
	return p, metrics, nil
}

// jobsClient submits jobs straight to Redis, as the API would.
func jobsClient(rdb redis.UniversalClient) (*store.Client, *store.Jobs, error) {
	jobStore, err := store.NewJobs(rdb, store.Config{MaxPending: 1 << 30})
	if err != nil {
		return nil, nil, err
	}
	return store.NewClient(rdb, jobStore), jobStore, nil
}

// pick is the full or the quick value.
func (s *scope) pick(full, quick int) int {
	if s.b.quick {
		return quick
	}
	return full
}

func (s *scope) pickDur(full, quick time.Duration) time.Duration {
	if s.b.quick {
		return quick
	}
	return full
}

func (s *scope) logf(format string, args ...any) {
	fmt.Fprintf(s.b.progress, "  %s: %s\n", s.name, fmt.Sprintf(format, args...))
}

// pct is 100·a/b.
func pct(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * a / b
}
