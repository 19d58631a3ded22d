package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/telemetry"
	"github.com/qaqueue/qaqueue/worker"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// A caller's span, as a client sends it in traceparent, and another one.
const (
	callerTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan   = "00f067aa0ba902b7"
	callerParent = "00-" + callerTrace + "-" + callerSpan + "-01"
	otherTrace   = "0af7651916cd43dd8448eb211c80319c"
	otherParent  = "00-" + otherTrace + "-b7ad6b7169203331-01"
)

// spans records the spans the API ends.
type spans struct{ rec *tracetest.SpanRecorder }

// setupTraced is setup with tracing on, every span sampled and recorded.
func setupTraced(t *testing.T, o options) (*bundle, spans) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	// Registered first, so it runs after the server has stopped.
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	o.tracing = tp
	return setup(t, o), spans{rec}
}

// named waits until n spans named name have ended and returns them, in the
// order they ended. A server span ends once its handler has returned,
// which may be just after its client has the answer.
func (s spans) named(t *testing.T, name string, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	var got []sdktrace.ReadOnlySpan
	testwait.Until(t, fmt.Sprintf("%d spans named %q", n, name), func() bool {
		got = got[:0]
		for _, sp := range s.rec.Ended() {
			if sp.Name() == name {
				got = append(got, sp)
			}
		}
		return len(got) >= n
	})
	if len(got) != n {
		t.Fatalf("%d spans named %q, want %d: %v", len(got), name, n, spanNames(s.rec.Ended()))
	}
	return got
}

// one waits for the one span named name.
func (s spans) one(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	return s.named(t, name, 1)[0]
}

func spanNames(ss []sdktrace.ReadOnlySpan) []string {
	var names []string
	for _, s := range ss {
		names = append(names, s.Name())
	}
	return names
}

// attrs is a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// wantAttrs checks that s has these attributes (among others).
func wantAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want ...attribute.KeyValue) {
	t.Helper()
	got := attrs(s)
	for _, kv := range want {
		if v, ok := got[kv.Key]; !ok || v != kv.Value {
			t.Errorf("span %q: %s = %v (set: %v), want %v", s.Name(), kv.Key, v.Emit(), ok, kv.Value.Emit())
		}
	}
}

// traceparentOf is the W3C traceparent of a sampled span.
func traceparentOf(s sdktrace.ReadOnlySpan) string {
	return "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
}

// childOf checks that child's parent is parent.
func childOf(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.Parent().SpanID() != parent.SpanContext().SpanID() || child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("span %q: parent %s/%s, want %q (%s/%s)", child.Name(), child.Parent().TraceID(), child.Parent().SpanID(),
			parent.Name(), parent.SpanContext().TraceID(), parent.SpanContext().SpanID())
	}
}

// record reads job id's record.
func (b *bundle) record(t *testing.T, id string) *jobs.Job {
	t.Helper()
	j, err := b.store.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return j
}

func TestTraceContinuesAnAuthenticatedCaller(t *testing.T) {
	t.Parallel()
	b, spans := setupTraced(t, options{api: secured(t, api.Config{})})
	const secret = "mallory-was-here"
	hdr := with(bearer(aliceKey), "traceparent", callerParent, "tracestate", "vendor=1", "baggage", "user="+secret)
	resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": "Traced?"}, hdr)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	id := decode[submitted](t, body).ID

	srv, send := spans.one(t, "POST /v1/jobs"), spans.one(t, "send interactive")
	if p := srv.Parent(); !p.IsRemote() || p.TraceID().String() != callerTrace || p.SpanID().String() != callerSpan {
		t.Errorf("request span's parent = %s/%s (remote %v), want the caller's %s/%s", p.TraceID(), p.SpanID(), p.IsRemote(), callerTrace, callerSpan)
	}
	if srv.SpanKind() != trace.SpanKindServer || send.SpanKind() != trace.SpanKindProducer {
		t.Errorf("kinds: request %v, send %v", srv.SpanKind(), send.SpanKind())
	}
	wantAttrs(t, srv, attribute.String("http.request.method", "POST"), attribute.String("http.route", "/v1/jobs"),
		attribute.Int("http.response.status_code", http.StatusAccepted), telemetry.Key.String("alice"))
	childOf(t, send, srv)
	j := b.record(t, id)
	wantAttrs(t, send, telemetry.JobID.String(id), telemetry.Queue.String(jobs.QueueInteractive),
		telemetry.Program.String(j.Spec.Program), telemetry.Key.String("alice"))
	// The workers continue the enqueue span, and only it: the spec holds
	// its traceparent, nothing of the caller's tracestate or baggage.
	if j.Spec.Trace != traceparentOf(send) {
		t.Errorf("spec.Trace = %q, want the send span's %q", j.Spec.Trace, traceparentOf(send))
	}
	raw, err := j.Spec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spans.rec.Ended() {
		if strings.Contains(fmt.Sprint(s.Attributes(), s.Events(), s.Links()), secret) {
			t.Errorf("span %q holds the caller's baggage", s.Name())
		}
	}
	if strings.Contains(string(raw), secret) || strings.Contains(string(raw), "vendor") {
		t.Errorf("the spec holds the caller's baggage or tracestate: %s", raw)
	}
}

// An anonymous request (no API keys configured) cannot continue a trace:
// whoever can reach the API could otherwise join or flood any trace.
func TestTraceAnonymousRequestStartsItsOwnTrace(t *testing.T) {
	t.Parallel()
	b, spans := setupTraced(t, options{})
	resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": "Anonymous?"}, http.Header{"traceparent": {callerParent}})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	srv, send := spans.one(t, "POST /v1/jobs"), spans.one(t, "send interactive")
	if srv.Parent().IsValid() || srv.SpanContext().TraceID().String() == callerTrace {
		t.Errorf("anonymous request continued the caller's trace: parent %v, trace %s", srv.Parent(), srv.SpanContext().TraceID())
	}
	if _, ok := attrs(srv)[telemetry.Key]; ok {
		t.Errorf("anonymous request's span names a key: %v", attrs(srv)[telemetry.Key].Emit())
	}
	childOf(t, send, srv)
	if j := b.record(t, decode[submitted](t, body).ID); j.Spec.Trace != traceparentOf(send) {
		t.Errorf("spec.Trace = %q, want %q", j.Spec.Trace, traceparentOf(send))
	}
}

// A request whose key is refused gets no span: authentication comes first.
// The requests go one after another on one connection, so the refused
// one's handler has returned before the next one's begins.
func TestTraceLeavesRefusedRequestsProbesAndMetricsOut(t *testing.T) {
	t.Parallel()
	b, spans := setupTraced(t, options{api: secured(t, api.Config{})})
	one := *b
	tr := &http.Transport{MaxConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	one.http = &http.Client{Transport: tr}
	for _, r := range []struct {
		method, path string
		hdr          http.Header
		status       int
	}{
		{"GET", "/health", nil, http.StatusOK},
		{"GET", "/livez", nil, http.StatusOK},
		{"GET", "/readyz", nil, http.StatusOK},
		{"GET", "/metrics", bearer(opsKey), http.StatusOK},
		{"GET", "/openapi.json", nil, http.StatusOK},
		{"POST", "/v1/jobs", with(bearer("not-a-key"), "traceparent", callerParent), http.StatusUnauthorized},
		{"GET", "/v1/jobs/0123456789abcdef0123456789abcdef", bearer(aliceKey), http.StatusNotFound},
	} {
		resp, body := one.do(t, r.method, r.path, nil, r.hdr)
		if resp.StatusCode != r.status {
			t.Fatalf("%s %s: %d %s", r.method, r.path, resp.StatusCode, body)
		}
	}
	spans.one(t, "GET /v1/jobs/:id")
	if names := spanNames(spans.rec.Ended()); len(names) != 1 {
		t.Errorf("spans %q, want only the job read's", names)
	}
}

// A client's retry under a new span replays its job, whose trace stays the
// first submit's: the idempotency hash leaves the trace out.
func TestTraceIdempotentReplayKeepsTheFirstTrace(t *testing.T) {
	t.Parallel()
	b, spans := setupTraced(t, options{api: secured(t, api.Config{})})
	var ids []string
	for _, parent := range []string{callerParent, otherParent} {
		resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": "Once?"},
			with(bearer(aliceKey), "traceparent", parent, "Idempotency-Key", "retry-1"))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit: %d %s", resp.StatusCode, body)
		}
		ids = append(ids, decode[submitted](t, body).ID)
		if parent == otherParent && resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("the retry was not a replay")
		}
	}
	if ids[0] != ids[1] {
		t.Fatalf("the retry made job %s, not %s", ids[1], ids[0])
	}
	sends := spans.named(t, "send interactive", 2)
	first := sends[0]
	if first.SpanContext().TraceID().String() != callerTrace {
		first = sends[1]
	}
	if j := b.record(t, ids[0]); j.Spec.Trace != traceparentOf(first) {
		t.Errorf("spec.Trace = %q, want the first submit's %q", j.Spec.Trace, traceparentOf(first))
	}
}

// With tracing off nothing is traced: no trace reaches a job's or a
// batch's spec, whatever the client sends.
func TestTraceOffPutsNoTraceInSpecs(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	hdr := with(bearer(aliceKey), "traceparent", callerParent)
	resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": "Untraced?"}, hdr)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	if j := b.record(t, decode[submitted](t, body).ID); j.Spec.Trace != "" {
		t.Errorf("spec.Trace = %q with tracing off", j.Spec.Trace)
	}
	v := b.upload(t, jsonl(`{"question":"q"}`), "application/x-ndjson", hdr)
	bt, err := b.batches.Get(context.Background(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bt.Spec.Trace != "" {
		t.Errorf("batch spec.Trace = %q with tracing off", bt.Spec.Trace)
	}
}

// GET /v1/jobs/{id}/events is a trace of its own (here the caller's),
// whose relay span links to the job's.
func TestTraceJobEventsRelayLinksToTheJob(t *testing.T) {
	t.Parallel()
	b, spans := setupTraced(t, options{api: secured(t, api.Config{})})
	b.startWorker(t, answerBehaviour)
	resp, body := b.do(t, "POST", "/v1/jobs?wait=20s", map[string]any{"question": "Relayed?"}, bearer(aliceKey))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	id := decode[submitted](t, body).ID
	frames := b.openSSE(t, "GET", "/v1/jobs/"+id+"/events", nil, with(bearer(aliceKey), "traceparent", otherParent)).rest(t)
	events := 0
	for _, f := range frames {
		if f.Event != "snapshot" {
			events++
		}
	}
	if events == 0 {
		t.Fatalf("no events relayed: %+v", frames)
	}

	srv, relay := spans.one(t, "GET /v1/jobs/:id/events"), spans.one(t, "relay events")
	if srv.SpanContext().TraceID().String() != otherTrace {
		t.Errorf("the events request is in trace %s, want the caller's %s", srv.SpanContext().TraceID(), otherTrace)
	}
	childOf(t, relay, srv)
	wantAttrs(t, relay, telemetry.JobID.String(id), attribute.Int("qa.events.relayed", events))
	job := telemetry.SpanContext(b.record(t, id).Spec.Trace)
	if !job.IsValid() {
		t.Fatal("the job's spec holds no trace")
	}
	if l := relay.Links(); len(l) != 1 || !l[0].SpanContext.Equal(job) {
		t.Errorf("relay links %+v, want one to the job's enqueue span %s/%s", l, job.TraceID(), job.SpanID())
	}
}

// /predict/stream relays inside its own trace: the request parents both
// the enqueue and the relay, and nothing is linked.
func TestTracePredictStreamRelaysInItsTrace(t *testing.T) {
	t.Parallel()
	b, spans := setupTraced(t, options{})
	b.startWorker(t, answerBehaviour)
	frames := b.openSSE(t, "POST", "/predict/stream", map[string]any{"question": "Streamed?"}, nil).rest(t)
	if len(frames) == 0 || frames[len(frames)-1].Data != "[DONE]" {
		t.Fatalf("frames = %+v", frames)
	}
	srv := spans.one(t, "POST /predict/stream")
	send, relay := spans.one(t, "send interactive"), spans.one(t, "relay events")
	childOf(t, send, srv)
	childOf(t, relay, srv)
	if len(relay.Links()) != 0 {
		t.Errorf("relay links %+v, want none", relay.Links())
	}
	if n := attrs(relay)["qa.events.relayed"].AsInt64(); n == 0 {
		t.Errorf("relay counted no events")
	}
}

// The seed's /batch enqueues each question in a span of its own, all in
// the request's trace.
func TestTraceSeedBatchSendsEachQuestion(t *testing.T) {
	t.Parallel()
	b, spans := setupTraced(t, options{})
	b.startWorker(t, answerBehaviour)
	resp, body := b.do(t, "POST", "/batch", []any{map[string]any{"question": "One?"}, map[string]any{"question": "Two?"}}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("batch: %d %s", resp.StatusCode, body)
	}
	srv := spans.one(t, "POST /batch")
	for _, send := range spans.named(t, "send interactive", 2) {
		childOf(t, send, srv)
		id := attrs(send)[telemetry.JobID].AsString()
		if j := b.record(t, id); j.Spec.Trace != traceparentOf(send) {
			t.Errorf("job %s: spec.Trace = %q, want %q", id, j.Spec.Trace, traceparentOf(send))
		}
	}
}

// A batch's create request enqueues it in "send batch", whose context the
// batch's spec holds; its events' relay links to it.
func TestTraceBatchCreateAndEvents(t *testing.T) {
	t.Parallel()
	b, spans := setupTraced(t, options{api: secured(t, api.Config{})})
	b.startBatchWorker(t, echoRunner, worker.Config{})
	v := b.upload(t, jsonl(`{"question":"q1"}`, `{"question":"q2"}`), "application/x-ndjson", with(bearer(aliceKey), "traceparent", callerParent))

	srv, send := spans.one(t, "POST /v1/batches"), spans.one(t, "send batch")
	if srv.Parent().SpanID().String() != callerSpan {
		t.Errorf("the create request's parent is %s, want the caller's %s", srv.Parent().SpanID(), callerSpan)
	}
	childOf(t, send, srv)
	bt, err := b.batches.Get(context.Background(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantAttrs(t, send, telemetry.BatchID.String(v.ID), telemetry.Queue.String(jobs.QueueBatch),
		telemetry.Program.String(bt.Spec.Program), telemetry.Key.String("alice"))
	if send.SpanKind() != trace.SpanKindProducer {
		t.Errorf("send batch kind %v", send.SpanKind())
	}
	if bt.Spec.Trace != traceparentOf(send) {
		t.Errorf("batch spec.Trace = %q, want the send span's %q", bt.Spec.Trace, traceparentOf(send))
	}

	frames := b.openSSE(t, "GET", "/v1/batches/"+v.ID+"/events", nil, bearer(aliceKey)).rest(t)
	if len(frames) == 0 || frames[len(frames)-1].Event != "completed" {
		t.Fatalf("frames = %+v", frames)
	}
	relay := spans.one(t, "relay events")
	childOf(t, relay, spans.one(t, "GET /v1/batches/:id/events"))
	wantAttrs(t, relay, telemetry.BatchID.String(v.ID))
	if l := relay.Links(); len(l) != 1 || !l[0].SpanContext.Equal(telemetry.SpanContext(bt.Spec.Trace)) {
		t.Errorf("relay links %+v, want one to the batch's send span", l)
	}
}

// A failed job's server span is an error only when the answer is a 5xx,
// and says so with a status code, never the failure's message.
func TestTraceServerErrorIsAnErrorSpan(t *testing.T) {
	t.Parallel()
	b, spans := setupTraced(t, options{})
	b.startWorker(t, func(ctx context.Context, a *store.Attempt, s jobs.Spec) error {
		return a.Fail(ctx, &jobs.Error{Code: "lm_error", Message: "the LM choked on " + s.Question()})
	})
	resp, body := b.do(t, "POST", "/predict", map[string]any{"question": "Fail?"}, nil)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("predict: %d %s", resp.StatusCode, body)
	}
	srv := spans.one(t, "POST /predict")
	if st := srv.Status(); st.Code.String() != "Error" || st.Description != "" {
		t.Errorf("status %+v, want Error without a description", st)
	}
	wantAttrs(t, srv, attribute.Int("http.response.status_code", 500), attribute.String("error.type", "500"))

	resp, _ = b.do(t, "GET", "/v1/jobs/0123456789abcdef0123456789abcdef", nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing job: %d", resp.StatusCode)
	}
	if st := spans.one(t, "GET /v1/jobs/:id").Status(); st.Code.String() != "Unset" {
		t.Errorf("a 404's span status is %v, want unset (the client's error)", st.Code)
	}
}

// Spans never carry a question, inputs, an answer or LM text, even with
// LOG_QUESTIONS on: a marker in every question, which every answer and
// failure quotes back, appears in no span.
func TestSpansHoldNoQuestionOrAnswer(t *testing.T) {
	t.Parallel()
	b, spans := setupTraced(t, options{api: api.Config{LogQuestions: true}})
	const marker = "zanzibarquokka"
	b.startWorker(t, func(ctx context.Context, a *store.Attempt, s jobs.Spec) error {
		if strings.Contains(s.Question(), "fail") {
			return a.Fail(ctx, &jobs.Error{Code: "lm_error", Message: "the LM choked on " + s.Question()})
		}
		return answerBehaviour(ctx, a, s)
	})
	q := func(what string) map[string]any { return map[string]any{"question": what + " " + marker + "?"} }
	var answers strings.Builder
	resp, body := b.do(t, "POST", "/v1/jobs?wait=20s", q("submit"), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	id := decode[submitted](t, body).ID
	answers.Write(body)
	for _, f := range b.openSSE(t, "GET", "/v1/jobs/"+id+"/events", nil, nil).rest(t) {
		answers.WriteString(f.Data)
	}
	for _, f := range b.openSSE(t, "POST", "/predict/stream", q("stream"), nil).rest(t) {
		answers.WriteString(f.Data)
	}
	for _, r := range []struct {
		path string
		body any
	}{
		{"/predict", q("predict")},
		{"/predict", q("fail")},
		{"/batch", []any{q("batch"), q("fail")}},
		{"/v1/jobs", map[string]any{"inputs": map[string]any{"question": "bad " + marker}, "program": "no-such-" + marker}},
	} {
		_, body := b.do(t, "POST", r.path, r.body, nil)
		answers.Write(body)
	}
	b.upload(t, jsonl(`{"question":"upload `+marker+`"}`), "application/x-ndjson", nil)
	for _, want := range []string{"Answer to: submit " + marker, "Answer to: batch " + marker, "choked on fail " + marker, "stream " + marker} {
		if !strings.Contains(answers.String(), want) {
			t.Fatalf("the answers should quote %q: %s", want, answers.String())
		}
	}

	spans.named(t, "POST /v1/jobs", 2)
	spans.named(t, "POST /predict", 2)
	spans.named(t, "relay events", 2)
	spans.one(t, "POST /predict/stream")
	spans.one(t, "POST /batch")
	spans.one(t, "send batch")
	all := spans.rec.Ended()
	for _, s := range all {
		text := fmt.Sprint(s.Name(), s.Attributes(), s.Events(), s.Links(), s.Status())
		if strings.Contains(text, marker) {
			t.Errorf("span %q holds the question's marker: %s", s.Name(), text)
		}
		for _, kv := range s.Attributes() {
			if strings.HasPrefix(string(kv.Key), "gen_ai.") && strings.HasSuffix(string(kv.Key), ".messages") {
				t.Errorf("span %q has %s", s.Name(), kv.Key)
			}
		}
	}
	if len(all) < 12 {
		t.Errorf("only %d spans checked: %v", len(all), spanNames(all))
	}
}

// A client that leaves its stream ends the relay: the usual end of a
// stream, not a failure.
func TestTraceRelayEndedByItsClientIsNoError(t *testing.T) {
	t.Parallel()
	b, spans := setupTraced(t, options{})
	id := b.submit(t, "Left?")
	s := b.openSSE(t, "GET", "/v1/jobs/"+id+"/events", nil, nil)
	if f, ok := s.next(t); !ok || f.Event != "queued" {
		t.Fatalf("first frame %+v, want queued", f)
	}
	s.close()
	relay := spans.one(t, "relay events")
	if st := relay.Status(); st.Code.String() != "Unset" {
		t.Errorf("relay status %+v, want unset", st)
	}
	wantAttrs(t, relay, attribute.Int("qa.events.relayed", 1))
}
