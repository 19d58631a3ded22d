package faulttest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/store"
	"go.uber.org/goleak"
)

// qaBin is the qa binary the tests run, built once in TestMain.
var qaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "faulttest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	qaBin = filepath.Join(dir, "qa")
	build := exec.Command("go", "build", "-o", qaBin, "github.com/qaqueue/qaqueue/cmd/qa")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "faulttest: build qa:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "faulttest: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// shortTimeouts nest as config requires: 3 × LM_TIMEOUT + LM_RATE_MAX_WAIT <
// JOB_TIMEOUT < SHUTDOWN_TIMEOUT; PREDICT_TIMEOUT ≤ JOB_TIMEOUT.
var shortTimeouts = []string{
	"LM_TIMEOUT=2s", "LM_RATE_MAX_WAIT=1s", "JOB_TIMEOUT=10s", "PREDICT_TIMEOUT=10s",
	"SHUTDOWN_TIMEOUT=12s", "MAX_RETRIES=3", "INTERACTIVE_MAX_WAIT=300s",
	"WORKER_CONCURRENCY=50", "BATCH_CONCURRENCY=2", "SSE_MAX_STREAMS_PER_KEY=100000",
}

// bundle is one test's system: Redis, the fake LM, and the qa processes.
type bundle struct {
	db    *redistest.DB
	lm    *benchkit.LM
	stack benchkit.Stack
	api   *benchkit.Proc
	c     *benchkit.Client
}

// setup starts the fake LM and `qa api` on db (nil: a fresh database on the
// shared server); env is added to every qa process's environment.
func setup(t *testing.T, db *redistest.DB, lmcfg fakelm.Config, env ...string) *bundle {
	t.Helper()
	if db == nil {
		db = redistest.New(t)
	}
	lm, err := benchkit.StartLM(lmcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	dir := t.TempDir()
	b := &bundle{db: db, lm: lm, stack: benchkit.Stack{
		Bin: qaBin, Dir: dir,
		Env: append(append(benchkit.BaseEnv(dir, db.URL(), lm.URL()), shortTimeouts...), env...),
	}}
	api, base, err := b.stack.StartAPI(ctxFor(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	b.api = api
	t.Cleanup(func() { stopProc(t, api) })
	b.c = benchkit.NewClient(base, 1100)
	t.Cleanup(b.c.HTTP.CloseIdleConnections)
	return b
}

// startWorker runs a `qa worker`; it is stopped when the test ends.
func (b *bundle) startWorker(t *testing.T, env ...string) *benchkit.Proc {
	t.Helper()
	w, _, err := b.stack.StartWorker(ctxFor(t, time.Minute), env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopProc(t, w) })
	return w
}

// stopProc stops p with SIGTERM; its output is logged when the test failed.
func stopProc(t *testing.T, p *benchkit.Proc) {
	if done, err := p.Exited(); done {
		if t.Failed() {
			t.Logf("%s had exited (%v); output:\n%s", p.Name, err, p.Output())
		}
		return
	}
	if err := p.Stop(20 * time.Second); err != nil {
		t.Errorf("stop %s: %v", p.Name, err)
	}
	if t.Failed() {
		t.Logf("%s output:\n%s", p.Name, p.Output())
	}
}

// ctxFor is a context that ends with the test or after d, a hang guard.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventLog is a job's whole event stream, read from the start.
type eventLog struct {
	frames []benchkit.Frame
}

func (b *bundle) events(t *testing.T, id string) eventLog {
	t.Helper()
	var l eventLog
	err := b.c.Events(ctxFor(t, 2*time.Minute), id, func(f benchkit.Frame) bool {
		l.frames = append(l.frames, f)
		return !isTerminal(f.Event)
	})
	if err != nil {
		t.Fatalf("events of %s: %v", id, err)
	}
	return l
}

func isTerminal(event string) bool {
	switch event {
	case "completed", "failed", "cancelled", "expired":
		return true
	}
	return false
}

func (l eventLog) types() string {
	var s []string
	for _, f := range l.frames {
		s = append(s, f.Event)
	}
	return strings.Join(s, ",")
}

func (l eventLog) count(event string) int {
	n := 0
	for _, f := range l.frames {
		if f.Event == event {
			n++
		}
	}
	return n
}

func (l eventLog) terminals() int {
	n := 0
	for _, f := range l.frames {
		if isTerminal(f.Event) {
			n++
		}
	}
	return n
}

// storedEvents is a job's event log as Redis holds it (duplicates would show
// here, where the SSE relay stops at the first terminal event).
func (b *bundle) storedEvents(t *testing.T, id string) []jobs.Event {
	t.Helper()
	jobStore, err := store.NewJobs(b.db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := jobStore.Events(ctxFor(t, 10*time.Second), id, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// terminalEvents counts the terminal events among evs.
func terminalEvents(evs []jobs.Event) int {
	n := 0
	for _, e := range evs {
		if e.Type.Terminal() {
			n++
		}
	}
	return n
}
