package api

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/programs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
)

// newTestServer is a Server on a private Redis database, without the
// dashboard, logging to log.
func newTestServer(t *testing.T, log zerolog.Logger) *Server {
	t.Helper()
	db := redistest.New(t)
	jobStore, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hub := store.NewHub(ctx, db.Client, zerolog.Nop())
	t.Cleanup(func() { _ = hub.Close() })
	bs, err := batches.NewStore(jobStore, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	registry, err := programs.New(db.Client, programs.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{DisableMonitoring: true}, Deps{
		Redis: db.Client, Client: store.NewClient(db.Client, jobStore), Store: jobStore, Hub: hub, Batches: bs, Programs: registry, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRecoveryAnswersJSONAndLogsWhereItPanicked(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	s := newTestServer(t, zerolog.New(&logs))
	defer s.Shutdown(context.Background())
	s.engine.GET("/panic", func(*gin.Context) { panic("secret internals") })
	s.engine.GET("/v1/panic", func(*gin.Context) { panic("secret internals") })
	for path, want := range map[string]string{
		"/panic":    `{"detail":"Internal Server Error"}`,
		"/v1/panic": `{"error":{"code":"internal","message":"internal error"}}`,
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer sk-never-logged")
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != 500 || strings.TrimSpace(rec.Body.String()) != want || strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
	out := logs.String()
	// Where it panicked, but no stack trace (issue 8).
	if !strings.Contains(out, `internal_test.go:`) || strings.Contains(out, "goroutine ") || !strings.Contains(out, `"status":500`) || strings.Contains(out, "sk-never-logged") {
		t.Errorf("log:\n%s", out)
	}
}

func TestWantsJSON(t *testing.T) {
	t.Parallel()
	for accept, want := range map[string]bool{
		"":                                   false,
		"*/*":                                false,
		"application/json":                   true,
		"application/json, text/plain;q=0.5": true,
		"text/plain;version=0.0.4;q=0.9,*/*;q=0.1":                          false,
		"application/openmetrics-text;version=1.0.0,application/json;q=0.1": false,
		"application/json;q=0":                                              false,
		"garbage;;":                                                         false,
	} {
		if got := wantsJSON(accept); got != want {
			t.Errorf("wantsJSON(%q) = %v, want %v", accept, got, want)
		}
	}
}

func TestFormatters(t *testing.T) {
	t.Parallel()
	// A job's payload is its id (one release 114e39c queued also holds its
	// question); the rest comes from its record.
	spec := jobs.Spec{ClientSpec: jobs.QuestionSpec("Why\nis <the> sky\tblue?" + strings.Repeat("x", 100))}
	spec.Options = jobs.Options{NoCache: true, Stream: true}
	specs := func(id string) *jobs.Spec {
		if id == "j1" {
			return &spec
		}
		return nil
	}
	for _, payload := range []string{`{"job_id":"j1"}`, `{"job_id":"j1","question":"Why?","owner":"o","stream":true}`} {
		got := formatPayload(jobs.TaskTypePredict, []byte(payload), 40, specs)
		want := "{\n  \"job_id\": \"j1\",\n  \"no_cache\": true,\n  \"question\": \"Why is <the> sky blue?xxxxxxxxxxxxxxxxxx… (truncated)\",\n  \"stream\": true\n}"
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("payload %s (-want +got):\n%s", payload, diff)
		}
	}
	if got := formatPayload(jobs.TaskTypePredict, []byte(`{"job_id":"gone"}`), 40, specs); got != "{\n  \"job_id\": \"gone\"\n}" {
		t.Errorf("the payload of a job without a record: %q", got)
	}
	res, _ := json.Marshal(jobs.Result{
		Outputs:    jobs.Outputs{{Name: "answer", Value: "Rayleigh scattering."}, {Name: "question_type", Value: "factual"}, {Name: "reasoning", Value: "long..."}},
		Provenance: jobs.Provenance{Model: "openai/gpt-4o-mini"}, LatencySeconds: 1.5,
	})
	got := formatResult(jobs.TaskTypePredict, res, 4096)
	want := "{\n  \"answer\": \"Rayleigh scattering.\",\n  \"cache_hit\": false,\n  \"latency_seconds\": 1.5,\n  \"model\": \"openai/gpt-4o-mini\",\n  \"question_type\": \"factual\"\n}"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if got := formatPayload(jobs.TaskTypePredict, []byte("\x00garbage"), 40, specs); !strings.HasPrefix(got, "unreadable payload: ") {
		t.Errorf("garbage payload: %q", got)
	}
	if got := truncate("日本語", 4); got != "日… (truncated)" {
		t.Errorf("truncate on a rune boundary: %q", got)
	}
}

func TestFrame(t *testing.T) {
	t.Parallel()
	got := frame("1-2", "token", "a\nb", 1500*time.Millisecond)
	if want := "id: 1-2\nevent: token\nretry: 1500\ndata: a\ndata: b\n\n"; got != want {
		t.Errorf("frame = %q, want %q", got, want)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", 5 * time.Second: "5"} {
		if got := retryAfter(d); got != want {
			t.Errorf("retryAfter(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	if err := (Config{MaxBodyBytes: -1, Heartbeat: -time.Second}).WithDefaults().validate(); err == nil ||
		!strings.Contains(err.Error(), "MaxBodyBytes") || !strings.Contains(err.Error(), "Heartbeat") {
		t.Errorf("bad config: %v", err)
	}
	c := Config{}.WithDefaults()
	if err := c.validate(); err != nil || c.MaxQuestionChars != 10000 || c.Heartbeat != 15*time.Second || c.MaxBatchItems != 100 {
		t.Errorf("defaults: %+v %v", c, err)
	}
}
