package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/programfile"
)

// swapExample is the two-stage typed program the swap scenario pushes,
// relative to the checkout's root.
const swapExample = "examples/claims/claims.yaml"

// swapAlias is the alias the scenario's clients name and the swap moves.
const swapAlias = "stable"

// benchSwap (issue 15's "Done when"): two APIs and two workers on one
// Redis; clients run the two-stage claims program through claims@stable
// and others the default program, in closed loops; halfway, a second
// version is pushed and stable moved to it through the first API. It
// measures how long after the move each API still resolved the old
// version, whether any job failed or ran another version than the one it
// was resolved to, and the default program's throughput and latency in the
// swap phase beside the same-length phase before it.
func benchSwap(ctx context.Context, s *scope) (*scenarioResult, error) {
	r := &scenarioResult{}
	file, err := findUp(swapExample, searchStarts()...)
	if err != nil {
		r.Skipped = err.Error()
		return r, nil
	}
	v1, err := programfile.Load(filepath.Dir(file), filepath.Base(file), 8<<20)
	if err != nil {
		return r, err
	}
	v2, err := restated(v1, " Be strict: a claim the quote only hints at is not supported.")
	if err != nil {
		return r, err
	}
	nClaims, nDefault := s.pick(8, 4), s.pick(8, 4)
	warm, phase := s.pickDur(3*time.Second, 2*time.Second), s.pickDur(20*time.Second, 6*time.Second)
	const ttft = 75 * time.Millisecond

	url, rdb, err := s.db(ctx)
	if err != nil {
		return r, err
	}
	lm, err := s.lm(fakelm.Config{TTFT: ttft})
	if err != nil {
		return r, err
	}
	adminKey := rand.Text()
	st := s.stack(url, lm, "ADMIN_API_KEYS=bench:"+adminKey)
	for range 2 {
		if _, _, err := s.worker(ctx, st); err != nil {
			return r, err
		}
	}
	var apis [2]*benchkit.Client
	for i := range apis {
		if _, apis[i], err = s.api(ctx, st); err != nil {
			return r, err
		}
	}
	admin := &benchkit.Client{Base: apis[0].Base, HTTP: apis[0].HTTP, Token: adminKey}
	p1, err := admin.Push(ctx, v1)
	if err != nil {
		return r, fmt.Errorf("push v1: %w", err)
	}
	if err := admin.SetAlias(ctx, p1.Name, swapAlias, p1.Version); err != nil {
		return r, fmt.Errorf("alias v1: %w", err)
	}
	ref := p1.Name + "@" + swapAlias

	t0 := time.Now()
	before := t0.Add(warm)      // the baseline phase: [before, swapAt)
	swapAt := before.Add(phase) // v2 pushed here; the swap phase: [swapAt, end)
	end := swapAt.Add(phase)    // no submit after this
	var (
		mu      sync.Mutex
		samples []swapJob
		wg      sync.WaitGroup
	)
	client := func(api int, program string, inputs func(n int) map[string]any) {
		defer wg.Done()
		c := apis[api]
		for n := 0; time.Now().Before(end) && ctx.Err() == nil; n++ {
			j := runSwapJob(ctx, c, program, inputs(n))
			j.api = api
			mu.Lock()
			samples = append(samples, j)
			mu.Unlock()
		}
	}
	tag := t0.UnixNano()
	for g := range nClaims {
		wg.Add(1)
		go client(g%2, ref, func(n int) map[string]any { return claimsInputs(tag, g, n) })
	}
	for g := range nDefault {
		wg.Add(1)
		go client(g%2, "", func(n int) map[string]any {
			return map[string]any{"question": fmt.Sprintf("swap %d %d-%d: how do tides work?", tag, g, n)}
		})
	}

	p2, moveSent, moved, swapErr := swapVersion(ctx, admin, v2, p1, swapAt)
	wg.Wait()
	if swapErr != nil {
		return r, swapErr
	}
	r.detail("v1", p1.Version)
	r.detail("v2", p2.Version)
	r.detail("moved_at_s", moved.Sub(t0).Seconds())

	// The version each claims job was resolved to is its record's spec's.
	_, jobStore, err := jobsClient(rdb)
	if err != nil {
		return r, err
	}
	for i := range samples {
		j := &samples[i]
		if j.program == "" || j.id == "" {
			continue
		}
		rec, err := jobStore.Get(ctx, j.id)
		if err != nil {
			return r, fmt.Errorf("read job record: %w", err)
		}
		j.resolved = rec.Spec.ProgramVersion
	}
	return reportSwap(r, samples, swapReport{
		old: p1.Version, new: p2.Version, moveSent: moveSent, moved: moved, lmCalls: lm.Calls(),
		before: before, swapAt: swapAt, end: end, phase: phase,
		clients: [2]int{nClaims, nDefault}, ttft: ttft,
	}), nil
}

// swapVersion pushes v2 at the instant at and moves swapAlias to it; sent
// is when the alias PUT was sent, moved when it returned.
func swapVersion(ctx context.Context, admin *benchkit.Client, v2 *programfile.Bundle, p1 benchkit.Pushed, at time.Time) (p2 benchkit.Pushed, sent, moved time.Time, err error) {
	if err := sleepFor(ctx, time.Until(at)); err != nil {
		return p2, sent, moved, err
	}
	if p2, err = admin.Push(ctx, v2); err != nil {
		return p2, sent, moved, fmt.Errorf("push v2: %w", err)
	}
	if p2.Version == p1.Version {
		return p2, sent, moved, errors.New("push v2: the same version as v1")
	}
	sent = time.Now()
	if err := admin.SetAlias(ctx, p2.Name, swapAlias, p2.Version); err != nil {
		return p2, sent, moved, fmt.Errorf("move %s to v2: %w", swapAlias, err)
	}
	return p2, sent, time.Now(), nil
}

// swapReport is the timeline and the setup reportSwap words.
type swapReport struct {
	old, new                             string
	moveSent, moved, before, swapAt, end time.Time
	phase                                time.Duration
	clients                              [2]int // claims, default
	ttft                                 time.Duration
	// lmCalls is how many chat calls the fake LM answered.
	lmCalls int64
}

// reportSwap words the samples as r's rows: each figure beside its
// same-run baseline and its goal.
func reportSwap(r *scenarioResult, samples []swapJob, w swapReport) *scenarioResult {
	for api := range 2 {
		seen := switchOf(samples, api, w.old, w.new, w.moved)
		row := r.row(fmt.Sprintf("switch time, API %d%s", api+1, map[bool]string{true: " (moved through it)", false: " (another replica)"}[api == 0]),
			benchkit.MS(seen.lag()), "ms").base("alias re-read period", 1000).atMost(1000)
		if !seen.sawNew {
			f := false
			row.Met = &f
			r.note("API %d: no job was resolved to the new version", api+1)
			continue
		}
		r.note("API %d: last v1 job sent %+.1f ms from the move's return, first v2 job %+.1f ms (the alias PUT took %.1f ms).",
			api+1, benchkit.MS(seen.lastOld), benchkit.MS(seen.firstNew), benchkit.MS(w.moved.Sub(w.moveSent)))
	}
	failed, firstErr := failures(samples)
	r.row("failed jobs", float64(failed), "jobs").base("jobs run", float64(len(samples))).equals(0)
	if firstErr != "" {
		r.note("first failure: %s", firstErr)
	}
	changed, checked := versionChanges(samples)
	r.row("jobs whose result ran another version than resolved", float64(changed), "jobs").base("claims jobs checked", float64(checked)).equals(0)
	r.note("%d v1 jobs were still running when the move returned, and finished on v1.", crossedMove(samples, w.old, w.moved))

	nb, latB := phaseStats(samples, w.before, w.swapAt)
	ns, latS := phaseStats(samples, w.swapAt, w.end)
	rateB, rateS := float64(nb)/w.phase.Seconds(), float64(ns)/w.phase.Seconds()
	r.row("default program jobs/s, swap phase", rateS, "jobs/s").base("before any push", rateB)
	r.row("default program jobs/s, % of before", pct(rateS, rateB), "%").atLeast(90)
	r.row("default program p50, swap phase", benchkit.MS(latS.P50), "ms").base("before any push", benchkit.MS(latB.P50)).atMost(1.1 * benchkit.MS(latB.P50))
	r.row("default program p99, swap phase", benchkit.MS(latS.P99), "ms").base("before any push", benchkit.MS(latB.P99))

	claims, lmCalls, cached := claimsStats(samples)
	_, dflt := phaseStats(samples, time.Time{}, w.end.Add(time.Hour))
	r.row("claims job p50 (two stages)", benchkit.MS(claims.P50), "ms").base("default program p50", benchkit.MS(dflt.P50))
	r.row("LM calls per claims job", lmCalls, "calls").equals(2)
	r.detail("claims_jobs", claims.N)
	if cached > 0 {
		r.note("%d claims stages were answered from the LM cache (their inputs are unique: a key collision?)", cached)
	}
	if reported := reportedLMCalls(samples); reported != w.lmCalls {
		r.note("the fake LM answered %d chat calls; the results' provenance.lm_calls add up to %d (it counts calls the LM cache answered too)", w.lmCalls, reported)
	}
	r.note("2 APIs and 2 workers on one Redis; fakelm TTFT %v; %d clients run claims@%s and %d the default program (half on each API), each a closed loop of POST /v1/jobs then GET ?wait= until done; phases of %v before and after the push of v2 and the move of %s through API 1.",
		w.ttft, w.clients[0], swapAlias, w.clients[1], w.phase, swapAlias)
	r.note("switch time = the latest send of a POST, after the alias PUT returned, whose job's record was resolved to v1, minus that return (0 when none); the version is the record's spec program_version, and the result's provenance.program_version must equal it.")
	return r
}

// swapJob is one job of the swap scenario, as a client saw it.
type swapJob struct {
	api     int
	program string // "" for the default program
	id      string
	// sent is when the POST was sent, done when the job was seen ended.
	sent, done time.Time
	status     string
	err        error
	// resolved is the version the record's spec names; ran the one the
	// result's provenance names.
	resolved, ran string
	lmCalls       int
	// cached counts the stages answered from the LM cache.
	cached int
}

func (j swapJob) failed() bool { return j.err != nil || j.status != "completed" }

// runSwapJob submits one job (program "" for the default program's
// question form) and long-polls it to its end.
func runSwapJob(ctx context.Context, c *benchkit.Client, program string, inputs map[string]any) swapJob {
	j := swapJob{program: program, sent: time.Now()}
	if program == "" {
		j.id, j.err = c.Submit(ctx, inputs["question"].(string), false)
	} else {
		j.id, j.err = c.SubmitProgram(ctx, program, inputs)
	}
	if j.err != nil {
		return j
	}
	job, err := c.WaitEnd(ctx, j.id)
	j.done = time.Now()
	if err != nil {
		j.err = err
		return j
	}
	j.status = job.Status
	if job.Error != nil {
		j.err = fmt.Errorf("%s: %s", job.Error.Code, job.Error.Message)
	}
	if job.Result != nil {
		j.ran, j.lmCalls = job.Result.Provenance.ProgramVersion, job.Result.Provenance.LMCalls
		for _, st := range job.Result.Stages {
			if st.CacheHit {
				j.cached++
			}
		}
	}
	return j
}

// claimsInputs are unique inputs for the claims program, so that no LM
// call is answered from the cache.
func claimsInputs(tag int64, g, n int) map[string]any {
	return map[string]any{
		"article":    fmt.Sprintf("Swap %d/%d-%d: the city planted 12,000 trees last year, the mayor said, and will plant more.", tag, g, n),
		"transcript": fmt.Sprintf("We planted twelve thousand trees in 2025, more than ever (%d/%d-%d).", tag, g, n),
	}
}

// switchSeen is what one API's jobs say of the move: the latest send of a
// job resolved to the old version and the earliest of one resolved to the
// new, each relative to the instant the move returned (negative: before).
type switchSeen struct {
	lastOld, firstNew time.Duration
	sawOld, sawNew    bool
}

// lag is how long after the move the API still resolved the old version:
// 0 when no job sent after the move was.
func (w switchSeen) lag() time.Duration {
	if !w.sawOld {
		return 0
	}
	return max(0, w.lastOld)
}

// switchOf reads API api's program jobs against the move's return, moved.
func switchOf(samples []swapJob, api int, old, new string, moved time.Time) switchSeen {
	var w switchSeen
	for _, j := range samples {
		if j.api != api || j.program == "" {
			continue
		}
		at := j.sent.Sub(moved)
		switch j.resolved {
		case new:
			if !w.sawNew || at < w.firstNew {
				w.firstNew = at
			}
			w.sawNew = true
		case old:
			if !w.sawOld || at > w.lastOld {
				w.lastOld = at
			}
			w.sawOld = true
		}
	}
	return w
}

// failures counts the jobs that failed or could not be submitted or
// followed, and says what the first one met.
func failures(samples []swapJob) (n int, first string) {
	for _, j := range samples {
		if !j.failed() {
			continue
		}
		if n++; first == "" {
			first = fmt.Sprintf("job %q (%s): status %q: %v", j.id, j.program, j.status, j.err)
		}
	}
	return n, first
}

// versionChanges counts the completed program jobs whose result ran
// another version than the one their spec was resolved to, of checked.
func versionChanges(samples []swapJob) (changed, checked int) {
	for _, j := range samples {
		if j.program == "" || j.failed() {
			continue
		}
		checked++
		if j.ran != j.resolved || j.resolved == "" {
			changed++
		}
	}
	return changed, checked
}

// crossedMove counts the jobs resolved to old that were still running at
// moved and completed on old.
func crossedMove(samples []swapJob, old string, moved time.Time) int {
	n := 0
	for _, j := range samples {
		if j.program != "" && !j.failed() && j.resolved == old && j.ran == old && j.sent.Before(moved) && j.done.After(moved) {
			n++
		}
	}
	return n
}

// phaseStats are the default program's completed jobs that ended within
// [from, to), and their latencies (send to seen ended).
func phaseStats(samples []swapJob, from, to time.Time) (int, benchkit.Summary) {
	var lat []time.Duration
	for _, j := range samples {
		if j.program != "" || j.failed() || j.done.Before(from) || !j.done.Before(to) {
			continue
		}
		lat = append(lat, j.done.Sub(j.sent))
	}
	return len(lat), benchkit.Summarize(lat)
}

// claimsStats are the completed program jobs' latencies, their mean LM
// calls and how many of their stages the LM cache answered.
func claimsStats(samples []swapJob) (lat benchkit.Summary, lmCalls float64, cached int) {
	var ds []time.Duration
	calls := 0
	for _, j := range samples {
		if j.program == "" || j.failed() {
			continue
		}
		ds = append(ds, j.done.Sub(j.sent))
		calls += j.lmCalls
		cached += j.cached
	}
	return benchkit.Summarize(ds), float64(calls) / float64(max(len(ds), 1)), cached
}

// reportedLMCalls is the LM calls the results report, all jobs together.
func reportedLMCalls(samples []swapJob) int64 {
	var n int64
	for _, j := range samples {
		n += int64(j.lmCalls)
	}
	return n
}

// restated is b with suffix added to every predictor's instructions in its
// state: the same program, another version.
func restated(b *programfile.Bundle, suffix string) (*programfile.Bundle, error) {
	dec := json.NewDecoder(bytes.NewReader(b.State))
	dec.UseNumber() // numbers in demos stay as written
	var state map[string]any
	if err := dec.Decode(&state); err != nil {
		return nil, fmt.Errorf("restate: %w", err)
	}
	n := 0
	for key, p := range state {
		sig, _ := p.(map[string]any)["signature"].(map[string]any)
		if ins, ok := sig["instructions"].(string); ok && key != "metadata" {
			sig["instructions"] = ins + suffix
			n++
		}
	}
	if n == 0 {
		return nil, errors.New("restate: the state has no predictor with instructions")
	}
	out, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("restate: %w", err)
	}
	c := *b
	c.State = out
	return &c, nil
}

// findUp is rel under the first of starts, or of their parents, that has
// it.
func findUp(rel string, starts ...string) (string, error) {
	for _, dir := range starts {
		for dir != "" {
			p := filepath.Join(dir, rel)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("%s not found above %q: run qa-bench inside the checkout", rel, starts)
}

// searchStarts are where findUp looks: the working directory and
// qa-bench's own (bin/ of the checkout under make bench).
func searchStarts() []string {
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd)
	}
	if self, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(self))
	}
	return dirs
}
