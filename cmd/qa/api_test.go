package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/rs/zerolog"
)

// TestAPIWithWorkersAndFakeLM runs the API and a worker as `qa api` and
// `qa worker` build them (startAPI, startWorkerStack) against a real
// redis-server and the fake LM, and walks the HTTP tour of docs/http.md.
func TestAPIWithWorkersAndFakeLM(t *testing.T) {
	t.Parallel()
	gin.SetMode(gin.ReleaseMode)
	db := redistest.New(t)
	lm, err := fakelm.New(fakelm.Config{TokensPerSecond: 2000})
	if err != nil {
		t.Fatal(err)
	}
	defer lm.Close()
	cfg, _, err := config.Load(config.MapLookup(map[string]string{
		"REDIS_URL": db.URL(), "HOST": "127.0.0.1", "PORT": "0", "WORKER_METRICS_PORT": "0",
		"LM_API_BASE": lm.URL(), "LM_API_KEY": "test", "CACHE_DISK_ENABLED": "false",
		"WORKER_CONCURRENCY": "8", "BATCH_CONCURRENCY": "2",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := zerolog.Nop()
	reg := newRegistry()
	stack, err := startWorkerStack(ctx, cfg, config.MapLookup(nil), db.Client, log, reg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stack.stop()
	api, err := startAPI(ctx, cfg, db.Client, db.URL(), log, reg, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		api.stop(sctx)
	}()
	base := "http://" + api.addr

	post := func(path, body string) (int, []byte) {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	get := func(path string, hdr ...string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	status, body := post("/predict", `{"question":"Why is the sky blue?"}`)
	var pred struct {
		Answer       string          `json:"answer"`
		QuestionType *string         `json:"question_type"`
		Usage        json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal(body, &pred); status != 200 || err != nil || pred.Answer == "" || pred.QuestionType == nil {
		t.Fatalf("/predict: %d %s", status, body)
	}

	// The seed's stream: the answer's tokens concatenate to the answer.
	resp, err := http.Post(base+"/predict/stream", "application/json", strings.NewReader(`{"question":"How do rainbows form?"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tokens strings.Builder
	var final struct{ Type, Answer, Detail string }
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	done := false
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var f struct{ Type, Field, Content, Answer, Detail string }
		if err := json.Unmarshal([]byte(data), &f); err != nil {
			t.Fatalf("frame %s: %v", data, err)
		}
		if f.Type == "token" {
			tokens.WriteString(f.Content)
		} else {
			final = struct{ Type, Answer, Detail string }{f.Type, f.Answer, f.Detail}
		}
	}
	resp.Body.Close()
	if !done || final.Type != "complete" || final.Answer == "" || tokens.String() != final.Answer {
		t.Fatalf("/predict/stream: done=%v final=%+v tokens=%q", done, final, tokens.String())
	}

	status, body = post("/v1/jobs", `{"question":"What is DSPy?"}`)
	var sub struct{ ID string }
	if err := json.Unmarshal(body, &sub); status != 202 || err != nil {
		t.Fatalf("/v1/jobs: %d %s", status, body)
	}
	status, body = get("/v1/jobs/" + sub.ID + "?wait=30s")
	if status != 200 || !strings.Contains(string(body), `"status":"completed"`) {
		t.Fatalf("long-poll: %d %s", status, body)
	}
	status, body = get("/v1/jobs/" + sub.ID + "/events")
	if status != 200 || !strings.Contains(string(body), "event: completed") || !strings.Contains(string(body), "event: token") {
		t.Fatalf("events: %d %s", status, body)
	}
	status, body = post("/batch", `[{"question":"What is Go?"},{"question":"What is Redis?"}]`)
	if status != 200 || !strings.Contains(string(body), `"count":2`) || strings.Contains(string(body), `"answer":null`) {
		t.Fatalf("/batch: %d %s", status, body)
	}
	status, body = get("/health")
	if status != 200 || !strings.Contains(string(body), `"status":"healthy"`) {
		t.Fatalf("/health: %d %s", status, body)
	}
	status, body = get("/metrics", "Accept", "application/json")
	if status != 200 || !strings.Contains(string(body), `"total_requests":4`) {
		t.Fatalf("/metrics JSON: %d %s", status, body)
	}
	status, body = get("/metrics")
	for _, want := range []string{"qa_http_requests_total", "qa_lm_calls_total", "asynq_queue_size"} {
		if status != 200 || !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if status, _ = get("/monitoring/"); status != 200 {
		t.Errorf("/monitoring/: %d", status)
	}
}
