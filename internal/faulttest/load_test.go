package faulttest

import (
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// TestShortLoad is a short `qa-bench --scenarios load`: 100 clients for 10 s
// (20 for 3 s under -short) mixing submit, long-poll, poll, SSE and /predict.
// No 5xx, no transport error, and every accepted job completes.
func TestShortLoad(t *testing.T) {
	t.Parallel()
	clients, dur := 100, 10*time.Second
	if testing.Short() {
		clients, dur = 20, 3*time.Second
	}
	b := setup(t, nil, fakelm.Config{TTFT: 20 * time.Millisecond, TokensPerSecond: 500}, "WORKER_CONCURRENCY=200")
	b.startWorker(t)
	res, err := benchkit.RunLoad(ctxFor(t, 3*time.Minute), b.c, benchkit.LoadConfig{Clients: clients, Duration: dur, Tag: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sessions (%v), %d requests %v, %d jobs accepted, %d completed, submit p50 %.1f ms p99 %.1f ms",
		res.Sessions, res.ByKind, res.Requests, res.ByStatus, res.Accepted, res.Completed, benchkit.MS(res.Submit.P50), benchkit.MS(res.Submit.P99))
	if res.Status5xx != 0 || res.TransportErrors != 0 {
		t.Errorf("%d 5xx answers, %d transport errors: %v", res.Status5xx, res.TransportErrors, res.Samples)
	}
	if res.Accepted == 0 || res.Completed != res.Accepted || res.Lost != 0 {
		t.Errorf("%d accepted, %d completed, %d lost; not completed: %v", res.Accepted, res.Completed, res.Lost, res.NotCompleted)
	}
}
