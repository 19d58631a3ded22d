package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/otlptest"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/telemetry"
	"github.com/rs/zerolog"
)

// TestOneTracePerJob is issue 18's "done when": the API and the workers as
// `qa api` and `qa worker` build them, each process exporting its spans
// through the real OTLP exporter (telemetry.New) to an in-process receiver,
// against a real redis-server and the fake LM.
//
//  1. A job submitted with a traceparent (and a valid API key) is one trace:
//     POST /v1/jobs (its parent the caller's span) → send interactive →
//     queued interactive → process interactive → stage … → chat ….
//  2. A job whose first LM call gets a 429 with Retry-After on worker A is
//     retried on worker B (A is stopped once the retry is recorded): both
//     attempts are in the job's trace, the first saying why it was retried.
//
// LOG_QUESTIONS is on, and no span quotes a question.
func TestOneTracePerJob(t *testing.T) {
	t.Parallel()
	gin.SetMode(gin.ReleaseMode)
	db := redistest.New(t)
	lm, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer lm.Close()
	rcv := otlptest.Start()
	defer rcv.Close()
	cfg, _, err := config.Load(config.MapLookup(map[string]string{
		"REDIS_URL": db.URL(), "HOST": "127.0.0.1", "PORT": "0", "WORKER_METRICS_PORT": "0",
		"LM_API_BASE": lm.URL(), "LM_API_KEY": "test", "CACHE_DISK_ENABLED": "false",
		"WORKER_CONCURRENCY": "2", "BATCH_CONCURRENCY": "1", "API_KEYS": "alice:alice-key", "LOG_QUESTIONS": "true",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := zerolog.Nop()
	// One tracer provider per process, as each would have its own; the
	// service name tells the two workers apart.
	var tracings []*telemetry.Tracing
	newTracing := func(process, service string) *telemetry.Tracing {
		tr, err := telemetry.New(ctx, telemetry.Config{Endpoint: rcv.URL, ServiceName: service}, telemetry.Options{Process: process})
		if err != nil {
			t.Fatal(err)
		}
		tracings = append(tracings, tr)
		return tr
	}
	apiTracing, aTracing, bTracing := newTracing("api", "api"), newTracing("worker", "worker-a"), newTracing("worker", "worker-b")

	workerA, err := startWorkerStack(ctx, cfg, config.MapLookup(nil), db.Client, log, newRegistry(), nil, aTracing.Provider())
	if err != nil {
		t.Fatal(err)
	}
	stopA := sync.OnceFunc(workerA.stop)
	defer stopA()
	api, err := startAPI(ctx, cfg, db.Client, db.URL(), log, newRegistry(), false, apiTracing.Provider())
	if err != nil {
		t.Fatal(err)
	}
	stopAPI := sync.OnceFunc(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		api.stop(sctx)
	})
	defer stopAPI()
	base := "http://" + api.addr

	// 1. One job, one trace.
	const marker = "quokka-indigo-3306"
	caller1 := traceparent{trace: "0af7651916cd43dd8448eb211c80319c", span: "b7ad6b7169203331"}
	job1 := submitTraced(t, base, caller1, "What is "+marker+"?")
	if s := jobStatus(t, base, job1, "?wait=30s"); s != "completed" {
		t.Fatalf("job 1 %s", s)
	}

	// 2. A 429 on worker A, the retry on worker B.
	caller2 := traceparent{trace: "4bf92f3577b34da6a3ce929d0e0e4736", span: "00f067aa0ba902b7"}
	job2 := submitTraced(t, base, caller2, "Is "+marker+" rate limited? [[fakelm:429,retry_after=2s,times=1]]")
	testwait.Until(t, "job 2's first attempt to end in a retry", func() bool {
		return jobStatus(t, base, job2, "") == "retrying"
	})
	stopA() // its retry is due 3 s later, which A is gone before
	workerB, err := startWorkerStack(ctx, cfg, config.MapLookup(nil), db.Client, log, newRegistry(), nil, bTracing.Provider())
	if err != nil {
		t.Fatal(err)
	}
	stopB := sync.OnceFunc(workerB.stop)
	defer stopB()
	if s := jobStatus(t, base, job2, "?wait=30s"); s != "completed" {
		t.Fatalf("job 2 %s", s)
	}

	// Stop everything (each stop runs once), then flush each process's
	// spans.
	stopB()
	stopAPI()
	for _, tr := range tracings {
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	spans := rcv.Spans()

	t.Run("one job", func(t *testing.T) {
		tr := inTrace(spans, caller1.trace)
		post := tr.only(t, "POST /v1/jobs", "server", caller1.span, "api")
		send := tr.only(t, "send interactive", "producer", post.SpanID, "api")
		queued := tr.only(t, "queued interactive", "internal", send.SpanID, "worker-a")
		process := tr.only(t, "process interactive", "consumer", queued.SpanID, "worker-a")
		stage := tr.childOf(t, process, "stage ", "internal")
		chat := tr.childOf(t, stage, "chat ", "client")
		if process.Attrs["qa.job.id"] != job1 || process.Attrs["qa.key"] != "alice" || process.Attrs["qa.attempt"] != int64(1) {
			t.Errorf("process span attributes %v", process.Attrs)
		}
		if chat.Attrs["gen_ai.operation.name"] != "chat" || chat.Attrs["qa.lm.cache_hit"] != false {
			t.Errorf("chat span attributes %v", chat.Attrs)
		}
		if len(tr) != 6 {
			t.Errorf("%d spans in the job's trace, want 6: %v", len(tr), tr.names())
		}
	})

	t.Run("retried on a second worker", func(t *testing.T) {
		tr := inTrace(spans, caller2.trace)
		post := tr.only(t, "POST /v1/jobs", "server", caller2.span, "api")
		send := tr.only(t, "send interactive", "producer", post.SpanID, "api")
		var process []otlptest.Span
		for _, q := range tr.named("queued interactive") {
			if q.ParentID != send.SpanID {
				t.Errorf("queued span's parent %s, want the send span %s", q.ParentID, send.SpanID)
			}
			process = append(process, tr.childOf(t, q, "process interactive", "consumer"))
		}
		if len(process) != 2 {
			t.Fatalf("%d attempts in the job's trace, want 2: %v", len(process), tr.names())
		}
		if process[0].Attrs["qa.attempt"] == int64(2) {
			process[0], process[1] = process[1], process[0]
		}
		first, second := process[0], process[1]
		if first.Service != "worker-a" || first.Attrs["qa.attempt"] != int64(1) || first.Status != "error" ||
			first.Attrs["qa.retry.reason"] != "lm_error" || first.Attrs["qa.retry.in_ms"] != int64(2000) ||
			first.Attrs["error.type"] != "429" || fmt.Sprint(first.Events) != "[retry]" {
			t.Errorf("first attempt: service %s status %s attributes %v events %v, want worker-a's retry after the 429",
				first.Service, first.Status, first.Attrs, first.Events)
		}
		if second.Service != "worker-b" || second.Attrs["qa.attempt"] != int64(2) || second.Status == "error" {
			t.Errorf("second attempt: service %s status %s attributes %v, want worker-b's completed attempt", second.Service, second.Status, second.Attrs)
		}
		for _, p := range process {
			if p.Attrs["qa.job.id"] != job2 {
				t.Errorf("attempt names job %v, want %s", p.Attrs["qa.job.id"], job2)
			}
			tr.childOf(t, tr.childOf(t, p, "stage ", "internal"), "chat ", "client")
		}
	})

	t.Run("no question in any span", func(t *testing.T) {
		for _, s := range spans {
			text := s.Name + "|" + s.StatusMessage + "|" + strings.Join(s.Events, "|")
			for k, v := range s.Attrs {
				text += fmt.Sprintf("|%s=%v", k, v)
				if strings.HasPrefix(k, "gen_ai.") && strings.HasSuffix(k, ".messages") {
					t.Errorf("span %q has %s", s.Name, k)
				}
			}
			if strings.Contains(text, marker) {
				t.Errorf("span %q quotes the question: %s", s.Name, text)
			}
		}
	})
}

// traceparent is a caller's span.
type traceparent struct{ trace, span string }

func (p traceparent) String() string { return "00-" + p.trace + "-" + p.span + "-01" }

// submitTraced submits question as alice, from within the caller's span.
func submitTraced(t *testing.T, base string, caller traceparent, question string) string {
	t.Helper()
	return postJob(t, base, question, "Authorization", "Bearer alice-key", "traceparent", caller.String())
}

func jobStatus(t *testing.T, base, id, query string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/jobs/"+id+query, nil)
	req.Header.Set("Authorization", "Bearer alice-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var j struct{ Status string }
	if err := json.Unmarshal(b, &j); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/jobs/%s: %d %s", id, resp.StatusCode, b)
	}
	return j.Status
}

// traceSpans are the received spans of one trace.
type traceSpans []otlptest.Span

func inTrace(spans []otlptest.Span, traceID string) traceSpans {
	var out traceSpans
	for _, s := range spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

func (tr traceSpans) named(name string) []otlptest.Span {
	var out []otlptest.Span
	for _, s := range tr {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func (tr traceSpans) names() []string {
	var out []string
	for _, s := range tr {
		out = append(out, s.Service+":"+s.Name)
	}
	return out
}

// only is the trace's one span called name, failing the test unless it is
// of kind, parent's child and service's.
func (tr traceSpans) only(t *testing.T, name, kind, parent, service string) otlptest.Span {
	t.Helper()
	got := tr.named(name)
	if len(got) != 1 {
		t.Fatalf("%d %q spans in the trace, want 1: %v", len(got), name, tr.names())
	}
	s := got[0]
	if s.Kind != kind || s.ParentID != parent || s.Service != service {
		t.Fatalf("%q: kind %s parent %s service %s, want %s, %s, %s", name, s.Kind, s.ParentID, s.Service, kind, parent, service)
	}
	return s
}

// childOf is parent's one child whose name starts with prefix, failing the
// test unless there is exactly one and it is of kind.
func (tr traceSpans) childOf(t *testing.T, parent otlptest.Span, prefix, kind string) otlptest.Span {
	t.Helper()
	var got []otlptest.Span
	for _, s := range tr {
		if s.ParentID == parent.SpanID && strings.HasPrefix(s.Name, prefix) {
			got = append(got, s)
		}
	}
	if len(got) != 1 || got[0].Kind != kind {
		t.Fatalf("%q's children named %q…: %v, want one of kind %s; the trace: %v", parent.Name, prefix, got, kind, tr.names())
	}
	return got[0]
}
