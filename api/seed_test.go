package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

func usageJSON() map[string]any {
	var u map[string]any
	_ = json.Unmarshal([]byte(testUsage), &u)
	return u
}

func TestPredict(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startWorker(t, answerBehaviour)
	resp, body := b.do(t, "POST", "/predict", map[string]any{"question": "Why is the sky blue?", "extra": "ignored"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("predict: %d %s", resp.StatusCode, body)
	}
	want := map[string]any{
		"answer": "Answer to: Why is the sky blue?", "key_concepts": "testing", "question_type": "factual",
		"usage": usageJSON(), "latency_seconds": 0.25,
	}
	if diff := cmp.Diff(want, decode[map[string]any](t, body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

// seedValidation is FastAPI's 422 body.
type seedValidation struct {
	Detail []struct {
		Loc  []any          `json:"loc"`
		Msg  string         `json:"msg"`
		Type string         `json:"type"`
		Ctx  map[string]any `json:"ctx"`
	} `json:"detail"`
}

func TestSeedValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{MaxBodyBytes: 64 << 10, MaxBatchBodyBytes: 128 << 10}})
	long := strings.Repeat("語", 10001)
	tests := []struct {
		path, body string
		want       string
	}{
		{"/predict", `{}`, `{"detail":[{"loc":["body","question"],"msg":"Field required","type":"missing"}]}`},
		{"/predict", `{"question":""}`, `{"detail":[{"loc":["body","question"],"msg":"String should have at least 1 character","type":"string_too_short","ctx":{"min_length":1}}]}`},
		{"/predict", `{"question":"` + long + `"}`, `{"detail":[{"loc":["body","question"],"msg":"String should have at most 10000 characters","type":"string_too_long","ctx":{"max_length":10000}}]}`},
		{"/predict", `{"question":["q"]}`, `{"detail":[{"loc":["body","question"],"msg":"Input should be a valid string","type":"string_type"}]}`},
		{"/predict", `"q"`, `{"detail":[{"loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","type":"model_attributes_type"}]}`},
		{"/predict", `{"question":`, `{"detail":[{"loc":["body",12],"msg":"JSON decode error","type":"json_invalid","ctx":{"error":"unexpected end of JSON input"}}]}`},
		{"/predict", ``, `{"detail":[{"loc":["body","question"],"msg":"Field required","type":"missing"}]}`},
		{"/predict", `{"question":"  \n "}`, `{"detail":[{"loc":["body","question"],"msg":"String should not be blank (only whitespace)","type":"string_blank"}]}`},
		{"/predict/stream", ``, `{"detail":[{"loc":["body","question"],"msg":"Field required","type":"missing"}]}`},
		{"/predict/stream", `{"question":"\t"}`, `{"detail":[{"loc":["body","question"],"msg":"String should not be blank (only whitespace)","type":"string_blank"}]}`},
		{"/batch", `[{"question":"q"},{"question":" "}]`, `{"detail":[{"loc":["body",1,"question"],"msg":"String should not be blank (only whitespace)","type":"string_blank"}]}`},
		{"/predict/stream", `{}`, `{"detail":[{"loc":["body","question"],"msg":"Field required","type":"missing"}]}`},
		{"/batch", `{"question":"q"}`, `{"detail":[{"loc":["body"],"msg":"Input should be a valid list","type":"list_type"}]}`},
		{"/batch", `[{"question":"q"},{"question":""},{}]`, `{"detail":[` +
			`{"loc":["body",1,"question"],"msg":"String should have at least 1 character","type":"string_too_short","ctx":{"min_length":1}},` +
			`{"loc":["body",2,"question"],"msg":"Field required","type":"missing"}]}`},
		{"/batch", `[` + strings.TrimSuffix(strings.Repeat(`{"question":"q"},`, 101), ",") + `]`,
			`{"detail":[{"loc":["body"],"msg":"List should have at most 100 items after validation, not 101","type":"too_long","ctx":{"actual_length":101,"field_type":"List","max_length":100}}]}`},
	}
	for _, tt := range tests {
		resp, body := b.do(t, "POST", tt.path, tt.body, nil)
		if resp.StatusCode != 422 {
			t.Errorf("%s %.40s: status %d %s", tt.path, tt.body, resp.StatusCode, body)
			continue
		}
		if diff := cmp.Diff(decode[any](t, []byte(tt.want)), decode[any](t, body)); diff != "" {
			t.Errorf("%s %.40s (-want +got):\n%s", tt.path, tt.body, diff)
		}
	}
	for path, size := range map[string]int{"/predict": 65 << 10, "/predict/stream": 65 << 10, "/batch": 129 << 10} {
		resp, body := b.do(t, "POST", path, `{"question":"`+strings.Repeat("a", size)+`"}`, nil)
		if resp.StatusCode != 413 || string(body) != "{\"detail\":\"Request body too large\"}\n" {
			t.Errorf("%s over the limit: %d %s", path, resp.StatusCode, body)
		}
	}
}

// hangBehaviour runs until its job is cancelled.
func (b *bundle) hangBehaviour(ctx context.Context, a *store.Attempt, _ jobs.Spec) error {
	return b.waitForEnd(ctx, a.JobID)
}

// runningJob returns the id of the one job in the test's database once it
// runs.
func (b *bundle) runningJob(t *testing.T) string {
	t.Helper()
	var id string
	testwait.Until(t, "a running job", func() bool {
		keys, err := b.db.Client.Keys(context.Background(), "qa:job:*").Result()
		if err != nil {
			return false
		}
		for _, k := range keys {
			if strings.HasSuffix(k, ":events") {
				continue
			}
			j, err := b.store.Get(context.Background(), strings.TrimPrefix(k, "qa:job:"))
			if err == nil && j.Status == jobs.StatusRunning {
				id = j.ID
				return true
			}
		}
		return false
	})
	return id
}

func TestPredictTimeoutGivesTheJobID(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{PredictTimeout: 100 * time.Millisecond}})
	b.startWorker(t, b.hangBehaviour)
	resp, body := b.do(t, "POST", "/predict", map[string]any{"question": "slow"}, nil)
	detail := decode[map[string]string](t, body)["detail"]
	id := b.runningJob(t)
	if resp.StatusCode != 504 || !strings.Contains(detail, "job "+id) || !strings.Contains(detail, "/v1/jobs/"+id) {
		t.Fatalf("timeout: %d %s", resp.StatusCode, body)
	}
	// The job goes on: the client may poll for it.
	if got := b.jobStatus(t, id); got != jobs.StatusRunning {
		t.Fatalf("job after the 504: %s", got)
	}
	b.do(t, "POST", "/v1/jobs/"+id+"/cancel", nil, nil)
}

func TestPredictFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startWorker(t, func(ctx context.Context, a *store.Attempt, _ jobs.Spec) error {
		return a.Fail(ctx, &jobs.Error{Code: "lm_error", Message: "the LM said 400", Status: 400})
	})
	resp, body := b.do(t, "POST", "/predict", map[string]any{"question": "q"}, nil)
	detail := decode[map[string]string](t, body)["detail"]
	if resp.StatusCode != 500 || !strings.HasPrefix(detail, "Prediction failed: the LM said 400 (job ") {
		t.Fatalf("failed job: %d %s", resp.StatusCode, body)
	}
}

func TestPredictClientGoneCancelsTheJob(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startWorker(t, b.hangBehaviour)
	for _, path := range []string{"/predict", "/predict/stream"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", b.url+path, strings.NewReader(`{"question":"q"}`))
		done := make(chan error, 1)
		go func() {
			resp, err := b.http.Do(req)
			if err == nil {
				// The stream's headers came; read until the client goes.
				_, err = resp.Body.Read(make([]byte, 1<<16))
				for err == nil {
					_, err = resp.Body.Read(make([]byte, 1<<16))
				}
				resp.Body.Close()
			}
			done <- err
		}()
		id := b.runningJob(t)
		cancel()
		<-done
		testwait.Until(t, path+"'s job to be cancelled", func() bool { return b.jobStatus(t, id) == jobs.StatusCancelled })
		// Only one job at a time for runningJob.
		if resp, _ := b.do(t, "DELETE", "/v1/jobs/"+id, nil, nil); resp.StatusCode != 204 {
			t.Fatalf("delete: %d", resp.StatusCode)
		}
	}
}

// seedFrames reads the data of a seed stream's frames.
func seedFrames(t *testing.T, s *sseStream) []string {
	t.Helper()
	var out []string
	for _, f := range s.rest(t) {
		if f.HasID || f.Event != "" {
			t.Errorf("seed frame with id or event: %+v", f)
		}
		out = append(out, f.Data)
	}
	return out
}

type seedFrame struct {
	Type           string          `json:"type"`
	Field          string          `json:"field"`
	Content        string          `json:"content"`
	Answer         string          `json:"answer"`
	Usage          json.RawMessage `json:"usage"`
	LatencySeconds float64         `json:"latency_seconds"`
	Detail         string          `json:"detail"`
}

func TestPredictStream(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startWorker(t, answerBehaviour)
	s := b.openSSE(t, "POST", "/predict/stream", map[string]any{"question": "Tell me a story"}, nil)
	frames := seedFrames(t, s)
	if len(frames) < 2 || frames[len(frames)-1] != "[DONE]" {
		t.Fatalf("frames = %q", frames)
	}
	if !strings.HasPrefix(frames[0], `{"type":"token","field":"answer","content":`) {
		t.Errorf("token frame %s: not the seed's key order", frames[0])
	}
	var tokens strings.Builder
	for _, f := range frames[:len(frames)-2] {
		tok := decode[seedFrame](t, []byte(f))
		if tok.Type != "token" || tok.Field != "answer" {
			t.Fatalf("token frame %s", f)
		}
		tokens.WriteString(tok.Content)
	}
	end := decode[map[string]any](t, []byte(frames[len(frames)-2]))
	want := map[string]any{"type": "complete", "answer": "Answer to: Tell me a story", "usage": usageJSON(), "latency_seconds": 0.25}
	if diff := cmp.Diff(want, end); diff != "" {
		t.Errorf("complete frame (-want +got):\n%s", diff)
	}
	if tokens.String() != "Answer to: Tell me a story" {
		t.Errorf("tokens concatenate to %q", tokens.String())
	}
}

func TestPredictStreamRetryAfterTokensEndsWithTheJobID(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startWorker(t, func(ctx context.Context, a *store.Attempt, spec jobs.Spec) error {
		if a.Number == 1 {
			if err := a.Token(ctx, "answer", "Partial"); err != nil {
				return err
			}
			if err := a.Token(ctx, "reasoning", "not relayed"); err != nil {
				return err
			}
			if err := a.Retry(ctx, &jobs.Error{Code: "lm_error", Message: "LM returned 503"}, 10*time.Millisecond); err != nil {
				return err
			}
			return errRetry
		}
		return answerBehaviour(ctx, a, spec)
	})
	s := b.openSSE(t, "POST", "/predict/stream", map[string]any{"question": "q"}, nil)
	frames := seedFrames(t, s)
	if len(frames) != 3 || frames[2] != "[DONE]" {
		t.Fatalf("frames = %q", frames)
	}
	if diff := cmp.Diff(seedFrame{Type: "token", Field: "answer", Content: "Partial"}, decode[seedFrame](t, []byte(frames[0]))); diff != "" {
		t.Errorf("token (-want +got):\n%s", diff)
	}
	e := decode[seedFrame](t, []byte(frames[1]))
	id := b.runningOrEndedJob(t)
	if e.Type != "error" || !strings.Contains(e.Detail, "job "+id) || !strings.Contains(e.Detail, "LM returned 503") {
		t.Fatalf("error frame = %s", frames[1])
	}
	// The job goes on and completes: the client can poll for it.
	resp, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait=20s", nil, nil)
	if got := decode[jobBody](t, body); resp.StatusCode != 200 || got.Status != "completed" || got.Attempts != 2 {
		t.Fatalf("the retried job: %s", body)
	}
}

// runningOrEndedJob returns the id of the one job in the test's database.
func (b *bundle) runningOrEndedJob(t *testing.T) string {
	t.Helper()
	keys, err := b.db.Client.Keys(context.Background(), "qa:job:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		if !strings.HasSuffix(k, ":events") {
			ids = append(ids, strings.TrimPrefix(k, "qa:job:"))
		}
	}
	if len(ids) != 1 {
		t.Fatalf("jobs in the database: %v", ids)
	}
	return ids[0]
}

func TestPredictStreamFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startWorker(t, func(ctx context.Context, a *store.Attempt, _ jobs.Spec) error {
		return a.Fail(ctx, &jobs.Error{Code: "parse_error", Message: "unparseable output"})
	})
	frames := seedFrames(t, b.openSSE(t, "POST", "/predict/stream", map[string]any{"question": "q"}, nil))
	if len(frames) != 2 || frames[1] != "[DONE]" {
		t.Fatalf("frames = %q", frames)
	}
	if e := decode[seedFrame](t, []byte(frames[0])); e.Type != "error" || !strings.HasPrefix(e.Detail, "Prediction failed: unparseable output (job ") {
		t.Fatalf("error frame = %s", frames[0])
	}
}

func TestPredictStreamDisabled(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{DisableStreaming: true}})
	resp, body := b.do(t, "POST", "/predict/stream", map[string]any{"question": "q"}, nil)
	if resp.StatusCode != 404 || string(body) != "{\"detail\":\"Not Found\"}\n" {
		t.Fatalf("disabled stream: %d %s", resp.StatusCode, body)
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startWorker(t, func(ctx context.Context, a *store.Attempt, s jobs.Spec) error {
		if s.Question() == "fail" {
			return a.Fail(ctx, &jobs.Error{Code: "lm_error", Message: "boom"})
		}
		return answerBehaviour(ctx, a, s)
	})
	resp, body := b.do(t, "POST", "/batch", `[{"question":"a"},{"question":"fail"},{"question":"c"}]`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("batch: %d %s", resp.StatusCode, body)
	}
	type result struct {
		Question string  `json:"question"`
		Answer   *string `json:"answer"`
		Error    *string `json:"error"`
	}
	got := decode[struct {
		Results []result `json:"results"`
		Count   int      `json:"count"`
	}](t, body)
	str := func(s string) *string { return &s }
	if got.Count != 3 || len(got.Results) != 3 || got.Results[1].Error == nil || !strings.HasPrefix(*got.Results[1].Error, "Prediction failed: boom") {
		t.Fatalf("batch body: %s", body)
	}
	got.Results[1].Error = str("x")
	want := []result{{"a", str("Answer to: a"), nil}, {"fail", nil, str("x")}, {"c", str("Answer to: c"), nil}}
	if diff := cmp.Diff(want, got.Results); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	resp, body = b.do(t, "POST", "/batch", `[]`, nil)
	if resp.StatusCode != 200 || string(body) != "{\"count\":0,\"results\":[]}\n" {
		t.Errorf("empty batch: %d %s", resp.StatusCode, body)
	}
}

func TestHealthAndProbes(t *testing.T) {
	t.Parallel()
	b := setup(t, options{health: api.HealthInfo{Model: "openai/gpt-4o-mini", Optimized: true}})
	for path, want := range map[string]string{
		"/health": `{"demo":false,"model":"openai/gpt-4o-mini","optimized":true,"status":"healthy"}`,
		"/livez":  `{"status":"ok"}`,
		"/readyz": `{"redis":"ok","status":"ready"}`,
	} {
		resp, body := b.do(t, "GET", path, nil, nil)
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != want {
			t.Errorf("%s: %d %s, want %s", path, resp.StatusCode, body, want)
		}
	}
}

func TestMetricsSummaryIsGlobal(t *testing.T) {
	t.Parallel()
	one := setup(t, options{api: api.Config{MetricsFlushInterval: 5 * time.Millisecond}})
	two := setup(t, options{db: one.db, api: api.Config{MetricsFlushInterval: 5 * time.Millisecond}})
	one.startWorker(t, func(ctx context.Context, a *store.Attempt, s jobs.Spec) error {
		if s.Question() == "fail" {
			return a.Fail(ctx, &jobs.Error{Code: "lm_error", Message: "boom"})
		}
		return answerBehaviour(ctx, a, s)
	})
	for _, q := range []string{"a", "b", "fail"} {
		one.do(t, "POST", "/predict", map[string]any{"question": q}, nil)
	}
	two.do(t, "POST", "/predict", map[string]any{"question": "c"}, nil)
	type summary struct {
		Uptime     float64 `json:"uptime_seconds"`
		Requests   int     `json:"total_requests"`
		Errors     int     `json:"total_errors"`
		ErrorRate  float64 `json:"error_rate"`
		AvgLatency float64 `json:"avg_latency"`
		Tokens     int     `json:"total_tokens"`
	}
	for name, b := range map[string]*bundle{"one": one, "two": two} {
		var got summary
		testwait.Until(t, name+" to see every replica's counts", func() bool {
			resp, body := b.do(t, "GET", "/metrics", nil, http.Header{"Accept": {"application/json"}})
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("summary: %d %s", resp.StatusCode, body)
			}
			got = decode[summary](t, body)
			return got.Requests == 4
		})
		if got.Errors != 1 || got.ErrorRate != 0.25 || got.Tokens != 45 || got.AvgLatency <= 0 || got.Uptime <= 0 {
			t.Errorf("%s: summary %+v", name, got)
		}
	}
}

func TestPrometheusMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startWorker(t, answerBehaviour)
	b.do(t, "POST", "/predict", map[string]any{"question": "q"}, nil)
	resp, body := b.do(t, "GET", "/metrics", nil, http.Header{"Accept": {"text/plain;version=0.0.4;q=0.9,*/*;q=0.1"}})
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`qa_http_requests_total{method="POST",route="/predict",status="200"} 1`,
		`qa_http_request_duration_seconds_bucket{method="POST",route="/predict",le="+Inf"} 1`,
		`qa_jobs_submitted_total{queue="interactive"} 1`,
		`qa_sse_subscribers 0`,
		`asynq_queue_size{queue="interactive"}`,
		`asynq_tasks_enqueued_total{queue="interactive",state="pending"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestMetricsDisabled(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{DisableMetrics: true}})
	for _, accept := range []string{"", "application/json"} {
		resp, body := b.do(t, "GET", "/metrics", nil, http.Header{"Accept": {accept}})
		if resp.StatusCode != 404 || string(body) != "{\"detail\":\"Metrics disabled\"}\n" {
			t.Errorf("Accept %q: %d %s", accept, resp.StatusCode, body)
		}
	}
}

func TestMonitoring(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.submit(t, "What is in the dashboard?")
	resp, body := b.do(t, "GET", "/monitoring/", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `href="/monitoring/favicon.ico"`) || !strings.Contains(string(body), "Asynq - Monitoring") {
		t.Fatalf("dashboard: %d %.200s", resp.StatusCode, body)
	}
	resp, body = b.do(t, "GET", "/monitoring/api/queues/interactive/pending_tasks", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `What is in the dashboard?`) {
		t.Fatalf("pending tasks: %d %s", resp.StatusCode, body)
	}
	resp, _ = b.do(t, "POST", "/monitoring/api/queues/interactive:pause", nil, nil)
	if resp.StatusCode != 405 {
		t.Fatalf("a write in read-only mode: %d", resp.StatusCode)
	}
}

// TestPredictStreamLostWorkerAfterTokens: a second start (the first worker
// vanished, asynq ran the task again) after tokens went out ends the seed
// stream with an error frame naming the job.
func TestPredictStreamLostWorkerAfterTokens(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	s := b.openSSE(t, "POST", "/predict/stream", map[string]any{"question": "q"}, nil)
	id := b.runningOrEndedJob(t)
	testwait.Until(t, "the stream to subscribe", func() bool { return b.hub.Subscribers() == 1 })
	token(t, b.start(t, id), "Hel")
	second := b.start(t, id)
	frames := seedFrames(t, s)
	if len(frames) != 3 || frames[2] != "[DONE]" {
		t.Fatalf("frames = %q", frames)
	}
	if e := decode[seedFrame](t, []byte(frames[1])); e.Type != "error" || !strings.Contains(e.Detail, "job "+id) {
		t.Fatalf("error frame %s", frames[1])
	}
	complete(t, second, "Hello")
}

func TestRequestIDIsEchoed(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	resp, _ := b.do(t, "GET", "/livez", nil, http.Header{"X-Request-ID": {"trace-abc.1"}})
	if got := resp.Header.Get("X-Request-ID"); got != "trace-abc.1" {
		t.Errorf("X-Request-ID = %q", got)
	}
	resp, _ = b.do(t, "GET", "/livez", nil, http.Header{"X-Request-ID": {"bad id\"<x>"}})
	if got := resp.Header.Get("X-Request-ID"); got == "" || strings.ContainsAny(got, " \"<") {
		t.Errorf("an unsafe X-Request-ID was kept: %q", got)
	}
	if !strings.Contains(b.logs.String(), `"request_id":"trace-abc.1"`) {
		t.Error("the access log lacks the request id")
	}
}
