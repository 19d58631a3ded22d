package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
)

// TestCopyResultLines: heartbeats (empty lines) are dropped, a continue line
// ends the copy and says where to go on, and a response cut mid-line is an
// error rather than a short file.
func TestCopyResultLines(t *testing.T) {
	t.Parallel()
	const a, b = `{"custom_id":"a","status":"completed","attempts":1}`, `{"custom_id":"b","status":"failed","attempts":3}`
	for _, c := range []struct {
		name, in, out string
		cont          *resultsContinue
		err           string
	}{
		{name: "results", in: a + "\n" + b + "\n", out: a + "\n" + b + "\n"},
		{name: "heartbeats", in: "\n" + a + "\n\n\n" + b + "\n\n", out: a + "\n" + b + "\n"},
		{name: "empty", in: "", out: ""},
		{
			name: "ended early",
			in:   a + "\n\n" + `{"object":"batch.results.continue","offset":1,"next":"/v1/batches/x/results?wait=true&offset=1","reason":"max_wait"}` + "\n",
			out:  a + "\n",
			cont: &resultsContinue{Offset: 1, Next: "/v1/batches/x/results?wait=true&offset=1", Reason: "max_wait"},
		},
		{name: "cut mid-line", in: a + "\n" + b[:10], out: a + "\n", err: "ended mid-line"},
	} {
		var w bytes.Buffer
		cont, err := copyResultLines(strings.NewReader(c.in), &w)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		}
		if w.String() != c.out {
			t.Errorf("%s: wrote %q, want %q", c.name, w.String(), c.out)
		}
		if diff := cmp.Diff(c.cont, cont); diff != "" {
			t.Errorf("%s: continue (-want +got):\n%s", c.name, diff)
		}
	}
}

// countingTransport counts the requests of a client.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// TestDownloadResultsFollowsEarlyEnds: against an API whose results
// downloads end after 50ms, downloadResults asks again from where each
// ended until the batch is done, and writes every result once, in order.
func TestDownloadResultsFollowsEarlyEnds(t *testing.T) {
	t.Parallel()
	gin.SetMode(gin.ReleaseMode)
	db := redistest.New(t)
	cfg, _, err := config.Load(config.MapLookup(map[string]string{
		"REDIS_URL": db.URL(), "HOST": "127.0.0.1", "PORT": "0", "BATCH_RESULTS_MAX_WAIT": "50ms",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	api, err := startAPI(ctx, cfg, db.Client, db.URL(), zerolog.Nop(), newRegistry(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		api.stop(sctx)
	})
	requests := &countingTransport{}
	c := &apiClient{base: "http://" + api.addr, http: &http.Client{Transport: requests}}
	var created struct{ ID string }
	resp, err := c.do(ctx, "POST", "/v1/batches", "application/x-ndjson", strings.NewReader("{\"custom_id\":\"a\",\"question\":\"q\"}\n{\"custom_id\":\"b\",\"question\":\"q\"}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = decodeJSON(resp.Body, &created)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}

	// No worker runs: the test finishes the items itself, as one would.
	jobStore, err := store.NewJobs(db.Client, jobsConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batches.NewStore(jobStore, batchConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	finish := func(index int, customID string) {
		t.Helper()
		a, out, err := bs.StartItem(ctx, jobs.BatchItemPayload{Batch: created.ID, Index: index, CustomID: customID})
		if err != nil || out != batches.ItemStarted {
			t.Fatalf("start item %d: %v %v", index, out, err)
		}
		if _, err := a.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: customID}}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	finish(0, "a")

	var out syncWriter
	done := make(chan error, 1)
	go func() { done <- downloadResults(ctx, c, created.ID, &out) }()
	// Two requests past the first: the download has ended early and been
	// asked again at least twice, waiting at item b.
	testwait.Until(t, "the download to be asked again twice", func() bool { return requests.n.Load() >= 4 })
	finish(1, "b")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the download did not end with the batch")
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"custom_id":"a"`) || !strings.Contains(lines[1], `"custom_id":"b"`) {
		t.Errorf("results: %q", out.String())
	}
}

// TestSaveResultsErrorSaysDownloadOnce: when every download fails on the
// server's side, the error says so in one sentence, "download results" once.
func TestSaveResultsErrorSaysDownloadOnce(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What the API answers when it fails to read the results.
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintf(w, `{"object":"batch.results.continue","offset":0,"next":%q,"reason":"error"}`+"\n", r.URL.RequestURI())
	}))
	t.Cleanup(srv.Close)
	c := &apiClient{base: srv.URL, http: srv.Client()}
	err := saveResults(context.Background(), c, "batch_x", "", io.Discard, true)
	if err == nil || strings.Count(err.Error(), "download results") != 1 || !strings.Contains(err.Error(), "failed to read them") {
		t.Fatalf("error = %v, want one sentence saying the server failed to read the results", err)
	}
}

// syncWriter is a goroutine-safe buffer.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
