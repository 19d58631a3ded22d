package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/programfile"
)

// The switch time per API is the latest send after the move of a job its
// record resolved to the old version; sends before the move, other APIs'
// jobs and default-program jobs do not count.
func TestSwitchOf(t *testing.T) {
	t.Parallel()
	moved := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return moved.Add(time.Duration(ms) * time.Millisecond) }
	samples := []swapJob{
		{api: 0, program: "claims@stable", resolved: "v1", sent: at(-500)},
		{api: 0, program: "claims@stable", resolved: "v1", sent: at(40)},
		{api: 0, program: "claims@stable", resolved: "v1", sent: at(12)},
		{api: 0, program: "claims@stable", resolved: "v2", sent: at(30)},
		{api: 0, program: "", sent: at(900)},                                 // the default program: no alias
		{api: 1, program: "claims@stable", resolved: "v1", sent: at(700)},    // another API
		{api: 0, program: "claims@stable", resolved: "other", sent: at(800)}, // neither version
	}
	seen := switchOf(samples, 0, "v1", "v2", moved)
	if want := (switchSeen{lastOld: 40 * time.Millisecond, firstNew: 30 * time.Millisecond, sawOld: true, sawNew: true}); seen != want || seen.lag() != 40*time.Millisecond {
		t.Errorf("API 0: switchOf = %+v, lag %v; want %+v, lag 40ms", seen, seen.lag(), want)
	}
	seen = switchOf(samples, 1, "v1", "v2", moved)
	if seen.lag() != 700*time.Millisecond || seen.sawNew {
		t.Errorf("API 1: switchOf = %+v, lag %v; want lag 700ms and no new version seen", seen, seen.lag())
	}
	seen = switchOf(samples[:1], 0, "v1", "v2", moved)
	if seen.lag() != 0 || seen.lastOld != -500*time.Millisecond {
		t.Errorf("only a send before the move: switchOf = %+v, lag %v; want lastOld -500ms, lag 0", seen, seen.lag())
	}
}

// A job changed version when its result names another version than its
// record was resolved to, or its record names none; failed jobs are
// counted as failures, not here.
func TestVersionChangesAndFailures(t *testing.T) {
	t.Parallel()
	samples := []swapJob{
		{id: "a", program: "claims@stable", status: "completed", resolved: "v1", ran: "v1"},
		{id: "b", program: "claims@stable", status: "completed", resolved: "v1", ran: "v2"},
		{id: "c", program: "claims@stable", status: "completed", resolved: "", ran: ""},
		{id: "d", program: "claims@stable", status: "failed", resolved: "v1", err: errors.New("lm_error: boom")},
		{id: "e", program: "", status: "completed"},
		{program: "", err: errors.New("HTTP 503")},
	}
	if changed, checked := versionChanges(samples); changed != 2 || checked != 3 {
		t.Errorf("versionChanges = %d of %d; want 2 of 3", changed, checked)
	}
	moved := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for i := range samples {
		samples[i].sent, samples[i].done = moved.Add(-time.Second), moved.Add(time.Second)
	}
	if n := crossedMove(samples, "v1", moved); n != 1 {
		t.Errorf("crossedMove = %d; want 1 (job a: b ran v2, d failed)", n)
	}
	n, first := failures(samples)
	if n != 2 || !strings.Contains(first, `"d"`) || !strings.Contains(first, "lm_error: boom") {
		t.Errorf("failures = %d, %q; want 2, naming job d and its error", n, first)
	}
}

// A phase holds the default program's completed jobs that ended within it;
// latency runs from the send to the end.
func TestPhaseStats(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	samples := []swapJob{
		{status: "completed", sent: at(900), done: at(1000)},                            // ends on the phase's start: in
		{status: "completed", sent: at(1100), done: at(1300)},                           // in
		{status: "completed", sent: at(1900), done: at(2000)},                           // ends on its end: out
		{status: "failed", sent: at(1100), done: at(1200), err: errors.New("x")},        // failed: out
		{program: "claims@stable", status: "completed", sent: at(1100), done: at(1500)}, // a program job: out
	}
	n, lat := phaseStats(samples, at(1000), at(2000))
	if n != 2 || lat.P50 != 100*time.Millisecond || lat.Max != 200*time.Millisecond {
		t.Errorf("phaseStats = %d, p50 %v, max %v; want 2, 100ms, 200ms", n, lat.P50, lat.Max)
	}
}

// The second version the scenario pushes is the example with every
// predictor's instructions changed: it compiles, and it is another version.
func TestRestatedIsAnotherVersion(t *testing.T) {
	t.Parallel()
	file := filepath.Join("..", "..", swapExample)
	v1, err := programfile.Load(filepath.Dir(file), filepath.Base(file), 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	const suffix = " (restated)"
	v2, err := restated(v1, suffix)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(v2.State), suffix+`"`); n != 2 {
		t.Errorf("restated state has %d instructions ending in %q; want 2 (extract.predict, verify)", n, suffix)
	}
	if !strings.Contains(string(v2.State), `"confidence": 0.85`) {
		t.Error("restated state lost a demo's number as written (0.85)")
	}
	ver1, err1 := v1.Version()
	ver2, err2 := v2.Version()
	if err := errors.Join(err1, err2); err != nil || ver1 == ver2 {
		t.Fatalf("versions %q and %q (%v): want two", ver1, ver2, err)
	}
	if _, err := programfile.Compile(v2); err != nil {
		t.Errorf("restated program does not compile: %v", err)
	}
	if _, err := restated(&programfile.Bundle{File: v1.File, State: []byte(`{"metadata": {}}`)}, suffix); err == nil {
		t.Error("restated a state without predictors: no error")
	}
}

func TestFindUp(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	want := filepath.Join(root, "examples", "claims", "claims.yaml")
	deep := filepath.Join(root, "bin", "x")
	for _, d := range []string{filepath.Dir(want), deep} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(want, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := findUp(swapExample, t.TempDir(), deep); err != nil || got != want {
		t.Errorf("findUp = %q, %v; want %q", got, err, want)
	}
	if _, err := findUp(swapExample, t.TempDir()); err == nil {
		t.Error("findUp with no checkout above: no error")
	}
}
