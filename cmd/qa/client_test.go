package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/rs/zerolog"
)

// clientEnv starts an API and a worker as `qa api` and `qa worker` build
// them, and returns the env a client command runs with.
func clientEnv(t *testing.T) (env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	e, stdout, stderr, _ := clientEnvWith(t, nil)
	return e, stdout, stderr
}

// clientEnvWith is clientEnv with more settings for the API and worker; it
// also returns the API's base URL. QA_URL is set in the env it returns.
func clientEnvWith(t *testing.T, settings map[string]string) (env, *bytes.Buffer, *bytes.Buffer, string) {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	db := redistest.New(t)
	lm, err := fakelm.New(fakelm.Config{TokensPerSecond: 5000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	vars := map[string]string{
		"REDIS_URL": db.URL(), "HOST": "127.0.0.1", "PORT": "0", "WORKER_METRICS_PORT": "0",
		"LM_API_BASE": lm.URL(), "LM_API_KEY": "test", "CACHE_DISK_ENABLED": "false",
		"WORKER_CONCURRENCY": "4", "BATCH_CONCURRENCY": "4", "MAX_RETRIES": "0",
	}
	maps.Copy(vars, settings)
	cfg, _, err := config.Load(config.MapLookup(vars), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stack, err := startWorkerStack(ctx, cfg, config.MapLookup(nil), db.Client, zerolog.Nop(), newRegistry(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.stop)
	api, err := startAPI(ctx, cfg, db.Client, db.URL(), zerolog.Nop(), newRegistry(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		api.stop(sctx)
	})
	var stdout, stderr bytes.Buffer
	base := "http://" + api.addr
	clientVars := map[string]string{"QA_URL": base}
	return env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return clientVars[k] }}, &stdout, &stderr, base
}

func TestClientSubmitAndWatch(t *testing.T) {
	t.Parallel()
	e, stdout, stderr := clientEnv(t)
	ctx := context.Background()
	if code := run(ctx, e, []string{"submit", "Why is the sky blue?"}); code != 0 || strings.TrimSpace(stdout.String()) == "" {
		t.Fatalf("submit: exit %d, out %q, err %q", code, stdout, stderr)
	}
	stdout.Reset()
	if code := run(ctx, e, []string{"submit", "--no-wait", "What is DSPy?"}); code != 0 {
		t.Fatalf("submit --no-wait: exit %d %s", code, stderr)
	}
	id := strings.TrimSpace(stdout.String())
	if len(id) != 32 {
		t.Fatalf("job id = %q", id)
	}
	stdout.Reset()
	if code := run(ctx, e, []string{"watch", id}); code != 0 || strings.TrimSpace(stdout.String()) == "" {
		t.Fatalf("watch: exit %d, out %q, err %q", code, stdout, stderr)
	}
}

func TestClientBatchWritesResultsAndFailsOnFailedItems(t *testing.T) {
	t.Parallel()
	e, stdout, stderr := clientEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf(`{"custom_id":"r%d","question":"What is %d?"}`, i, i))
	}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run(ctx, e, []string{"batch", in, "-o", out}); code != 0 {
		t.Fatalf("batch: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr.String(), "30/30") || !strings.Contains(stderr.String(), "completed: 30 completed") {
		t.Fatalf("progress output: %q", stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(got)), "\n")
	for i, r := range rows {
		var v struct {
			CustomID string `json:"custom_id"`
			Status   string `json:"status"`
		}
		if err := json.Unmarshal([]byte(r), &v); err != nil || v.CustomID != fmt.Sprintf("r%d", i) || v.Status != "completed" {
			t.Fatalf("row %d = %s", i, r)
		}
	}
	if len(rows) != 30 {
		t.Fatalf("%d rows", len(rows))
	}
	// The batch's events through `qa watch`.
	id := strings.Fields(strings.SplitN(stderr.String(), "\n", 2)[0])[1]
	stdout.Reset()
	if code := run(ctx, e, []string{"watch", id}); code != 0 || !strings.Contains(stdout.String(), "completed: 30 completed") {
		t.Fatalf("watch batch: exit %d %q %q", code, stdout, stderr)
	}

	// One item the LM refuses: the results are written, the exit code is 1.
	if err := os.WriteFile(in, []byte(`{"question":"fine"}`+"\n"+`{"question":"bad [[fakelm:400]]"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run(ctx, e, []string{"batch", in, "-o", out}); code != 1 || !strings.Contains(stderr.String(), "1 of 2 items failed") {
		t.Fatalf("batch with a failure: exit %d: %s", code, stderr)
	}
	if got, _ := os.ReadFile(out); strings.Count(string(got), "\n") != 2 || !strings.Contains(string(got), `"status":"failed"`) {
		t.Fatalf("results with a failure: %s", got)
	}
}

func TestProgressBarLine(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	p := newProgressBar(&bytes.Buffer{}, nil)
	var d batchProgressData
	d.Status = "in_progress"
	d.RequestCounts.Total = 100
	if got := p.line(d, t0); !strings.HasPrefix(got, "[..............................] 0/100") || !strings.Contains(got, "ETA ?") {
		t.Fatalf("first line = %q", got)
	}
	// The first items say little of the rate (pickup, a cold cache, one slow
	// answer): no ETA from them.
	for i, at := range []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond} {
		d.RequestCounts.Completed = i + 1
		if got := p.line(d, t0.Add(at)); !strings.Contains(got, "ETA ?") {
			t.Fatalf("%d done after %v: %q, want no ETA yet", i+1, at, got)
		}
	}
	// Many items quickly: still not measured over long enough.
	d.RequestCounts.Completed = 20
	if got := p.line(d, t0.Add(time.Second)); !strings.Contains(got, "ETA ?") {
		t.Fatalf("20 done after 1s: %q, want no ETA yet", got)
	}
	d.RequestCounts.Completed, d.RequestCounts.Failed = 45, 5
	got := p.line(d, t0.Add(10*time.Second))
	for _, want := range []string{"[###############...............] 50/100", "ok 45", "failed 5", "5/s", "ETA 10s"} {
		if !strings.Contains(got, want) {
			t.Fatalf("line %q lacks %q", got, want)
		}
	}
}

// writeQuestions writes n JSONL questions r0…r(n-1) to a fresh file.
func writeQuestions(t *testing.T, n int) string {
	t.Helper()
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf(`{"custom_id":"r%d","question":"What is %d?"}`, i, i))
	}
	in := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

// cancelOnWrite is a writer that cancels a context once what was written to
// it contains mark: the test's Ctrl-C at a known point.
type cancelOnWrite struct {
	bytes.Buffer
	mark   string
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if strings.Contains(w.String(), w.mark) {
		w.cancel()
	}
	return n, err
}

// Ctrl-C while a batch runs leaves the batch running and says how to fetch
// it; `qa results` then waits for it and writes every row.
func TestClientBatchInterruptedThenResults(t *testing.T) {
	t.Parallel()
	e, _, _ := clientEnv(t)
	in := writeQuestions(t, 30)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &cancelOnWrite{mark: "batch batch_", cancel: cancel}
	e.stderr = stderr
	code := run(ctx, e, []string{"batch", in})
	id := strings.Fields(strings.SplitN(stderr.String(), "\n", 2)[0])[1]
	msg := stderr.String()
	if code != 130 || !strings.Contains(msg, "batch "+id+" goes on") ||
		!strings.Contains(msg, "qa results "+id+" -o results.jsonl") || strings.Contains(msg, "context canceled") {
		t.Fatalf("interrupted batch: exit %d, stderr %q", code, msg)
	}

	var stdout, errOut bytes.Buffer
	e.stdout, e.stderr = &stdout, &errOut
	out := filepath.Join(t.TempDir(), "out.jsonl")
	if code := run(context.Background(), e, []string{"results", id, "-o", out}); code != 0 {
		t.Fatalf("qa results: exit %d: %s", code, &errOut)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(got), `"status":"completed"`); n != 30 || !strings.Contains(errOut.String(), "completed: 30 completed") {
		t.Fatalf("qa results wrote %d completed rows; stderr %q", n, &errOut)
	}
	// --no-wait: the id on stdout, for `qa results` later.
	stdout.Reset()
	if code := run(context.Background(), e, []string{"batch", "--no-wait", in}); code != 0 || !strings.HasPrefix(stdout.String(), "batch_") {
		t.Fatalf("qa batch --no-wait: exit %d, stdout %q, stderr %q", code, &stdout, &errOut)
	}
	if code := run(context.Background(), e, []string{"results", strings.TrimSpace(stdout.String()), "-o", out}); code != 0 {
		t.Fatalf("qa results after --no-wait: exit %d: %s", code, &errOut)
	}
	// An unknown batch is a sentence naming it.
	errOut.Reset()
	if code := run(context.Background(), e, []string{"results", "batch_00000000000000000000000000000000"}); code != 1 ||
		!strings.Contains(errOut.String(), "404 Not Found") {
		t.Fatalf("qa results of an unknown batch: exit %d: %q", code, &errOut)
	}
}

// --url and --key stand beside QA_URL and QA_API_KEY; a missing key says
// how to give one.
func TestClientURLAndKeyFlags(t *testing.T) {
	t.Parallel()
	e, stdout, stderr, base := clientEnvWith(t, map[string]string{"API_KEYS": "alice:alice-secret-key"})
	e.getenv = func(string) string { return "" }
	ctx := context.Background()
	if code := run(ctx, e, []string{"submit", "--url", base, "--key", "alice-secret-key", "--no-wait", "What is DSPy?"}); code != 0 ||
		len(strings.TrimSpace(stdout.String())) != 32 {
		t.Fatalf("submit --url --key: exit %d, out %q, err %q", code, stdout, stderr)
	}
	stderr.Reset()
	code := run(ctx, e, []string{"submit", "--url", base, "What is DSPy?"})
	if msg := stderr.String(); code != 1 || !strings.Contains(msg, "401 Unauthorized") || !strings.Contains(msg, "QA_API_KEY or --key") {
		t.Fatalf("submit without a key: exit %d, err %q", code, msg)
	}
}

// A bad QA_URL or an API that is not there get sentences, not Go's errors.
func TestClientErrorsAreSentences(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	_ = l.Close()
	for _, tc := range []struct {
		vars      map[string]string
		args      []string
		want, not string
	}{
		{map[string]string{"QA_URL": "127.0.0.1:8000"}, []string{"submit", "q"},
			`QA_URL="127.0.0.1:8000" is not a URL: did you mean http://127.0.0.1:8000?`, "first path segment"},
		{nil, []string{"watch", "--url", "localhost:8000", "x"},
			`--url="localhost:8000" is not a URL: did you mean http://localhost:8000?`, "unsupported protocol"},
		{map[string]string{"QA_URL": "ftp://example.com"}, []string{"results", "batch_x"},
			`QA_URL="ftp://example.com" is not a URL: it needs http:// or https://`, ""},
		{map[string]string{"QA_URL": closed}, []string{"submit", "q"},
			"cannot reach the API at " + closed + ": connection refused. Is `qa dev` running, or is QA_URL wrong?", "dial tcp"},
	} {
		code, _, stderr := runCmd(t, tc.vars, tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) || (tc.not != "" && strings.Contains(stderr, tc.not)) {
			t.Errorf("qa %q with %v: exit %d, stderr %q; want %q", tc.args, tc.vars, code, stderr, tc.want)
		}
	}
}

// TestClientBatchProvider: `qa batch --provider` runs a batch through the
// fake LM's batch API, shows the provider's phase and ends with the cost;
// where the provider has no batch API (PROVIDER_BATCHES=false here), the
// refusal is said in words.
func TestClientBatchProvider(t *testing.T) {
	t.Parallel()
	in := writeQuestions(t, 3)
	e, _, stderr, _ := clientEnvWith(t, map[string]string{"PROVIDER_POLL_INTERVAL": "100ms", "PROVIDER_POLL_MAX": "200ms"})
	code := run(context.Background(), e, []string{"batch", "--provider", in})
	out := stderr.String()
	if code != 0 || !strings.Contains(out, "provider in_progress (round 1)") ||
		!strings.Contains(out, "cost: $0.") || !strings.Contains(out, "for openai/gpt-4o-mini: 3 provider calls, 0 live") {
		t.Fatalf("qa batch --provider: exit %d, stderr %q", code, out)
	}

	e, _, stderr, _ = clientEnvWith(t, map[string]string{"PROVIDER_BATCHES": "false"})
	code = run(context.Background(), e, []string{"batch", "--provider", in})
	if code != 1 || !strings.Contains(stderr.String(), "422") || !strings.Contains(stderr.String(), "mode=provider needs the LM provider's batch API") {
		t.Fatalf("qa batch --provider, PROVIDER_BATCHES=false: exit %d, stderr %q", code, stderr)
	}
}

// TestProgressBarLineShowsProviderPhase: a provider-mode batch's line says
// where its provider round is.
func TestProgressBarLineShowsProviderPhase(t *testing.T) {
	t.Parallel()
	p := newProgressBar(&bytes.Buffer{}, nil)
	var d batchProgressData
	d.Status = "in_progress"
	d.RequestCounts.Total = 100
	if got := p.line(d, time.Unix(1000, 0)); strings.Contains(got, "provider") {
		t.Fatalf("live line = %q", got)
	}
	d.Provider = &providerData{Phase: "in_progress", Round: 2, Stage: "verify"}
	d.Provider.Counts.Total, d.Provider.Counts.Completed, d.Provider.Counts.Cached = 90, 40, 10
	got := p.line(d, time.Unix(1001, 0))
	if want := "in_progress  provider in_progress (round 2, stage verify) 40/90, 10 cached"; !strings.HasSuffix(got, want) {
		t.Fatalf("provider line = %q, want it to end %q", got, want)
	}
}

// TestCostLine: the cost a provider batch reports, in dollars.
func TestCostLine(t *testing.T) {
	t.Parallel()
	micros, live := int64(1_234_567), int64(2_469_134)
	for _, c := range []struct {
		cost batchCost
		want string
	}{
		{batchCost{Model: "openai/gpt-4o-mini", Micros: &micros, LiveMicros: &live, ProviderCalls: 95, LiveCalls: 5},
			"cost: $1.234567 ($2.469134 live) for openai/gpt-4o-mini: 95 provider calls, 5 live"},
		{batchCost{Model: "mystery", ProviderCalls: 3},
			"cost: unknown (mystery is not in LM_PRICES): 3 provider calls, 0 live"},
	} {
		if got := costLine(c.cost); got != c.want {
			t.Errorf("costLine = %q, want %q", got, c.want)
		}
	}
}
