package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	gin.SetMode(gin.ReleaseMode)
	db := redistest.New(t)
	lm, err := fakelm.New(fakelm.Config{TokensPerSecond: 5000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	cfg, _, err := config.Load(config.MapLookup(map[string]string{
		"REDIS_URL": db.URL(), "HOST": "127.0.0.1", "PORT": "0", "WORKER_METRICS_PORT": "0",
		"LM_API_BASE": lm.URL(), "LM_API_KEY": "test", "CACHE_DISK_ENABLED": "false",
		"WORKER_CONCURRENCY": "4", "BATCH_CONCURRENCY": "4", "MAX_RETRIES": "0",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stack, err := startWorkerStack(ctx, cfg, config.MapLookup(nil), db.Client, zerolog.Nop(), newRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.stop)
	api, err := startAPI(ctx, cfg, db.Client, db.URL(), zerolog.Nop(), newRegistry(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		api.stop(sctx)
	})
	var stdout, stderr bytes.Buffer
	vars := map[string]string{"QA_URL": "http://" + api.addr}
	return env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }}, &stdout, &stderr
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
