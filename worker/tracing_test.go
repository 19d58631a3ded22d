package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/offload"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/telemetry"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// apiSpan stands for the API's enqueue span, whose traceparent a job's spec
// carries.
const (
	apiTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	apiSpan   = "00f067aa0ba902b7"
	apiParent = "00-" + apiTrace + "-" + apiSpan + "-01"
)

// traced makes b's LM client, runner and workers trace into the returned
// recorder (call it before serveClaims, which takes b's LM client);
// mod adjusts the LM client's settings.
func (b *bundle) traced(t *testing.T, mod ...func(*lmclient.Config)) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg := lmclient.Config{APIBase: b.lm.URL(), APIKey: "test", Timeout: 10 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	lc, err := lmclient.New(cfg, lmclient.Deps{Redis: b.db.Client, Tracing: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	b.lc, b.runner, b.tracing = lc, worker.NewProgramRunner(program.NewQA(), lc), tp
	return rec
}

// waitSpans waits until n spans named name have ended (an attempt's process
// span ends after its job's end is written) and returns every ended span.
func waitSpans(t *testing.T, rec *tracetest.SpanRecorder, name string, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	var all []sdktrace.ReadOnlySpan
	testwait.Until(t, fmt.Sprintf("%d %q spans", n, name), func() bool {
		all = rec.Ended()
		return len(named(all, name)) >= n
	})
	return all
}

// named are the spans called name, in the order they ended.
func named(all []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range all {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// childrenOf are the spans whose parent is p.
func childrenOf(all []sdktrace.ReadOnlySpan, p sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range all {
		if s.Parent().SpanID() == p.SpanContext().SpanID() {
			out = append(out, s)
		}
	}
	return out
}

// attr is span s's attribute k (the zero Value when it has none).
func attr(s sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func eventNames(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, e := range s.Events() {
		out = append(out, e.Name)
	}
	return out
}

// quoting fails the test if any span's name, status, attributes, events or
// links quote text.
func quoting(t *testing.T, all []sdktrace.ReadOnlySpan, text string) {
	t.Helper()
	for _, s := range all {
		var b strings.Builder
		b.WriteString(s.Name() + "|" + s.Status().Description)
		for _, kv := range s.Attributes() {
			fmt.Fprintf(&b, "|%s=%s", kv.Key, kv.Value.Emit())
		}
		for _, e := range s.Events() {
			b.WriteString("|" + e.Name)
			for _, kv := range e.Attributes {
				fmt.Fprintf(&b, "|%s=%s", kv.Key, kv.Value.Emit())
			}
		}
		for _, l := range s.Links() {
			for _, kv := range l.Attributes {
				fmt.Fprintf(&b, "|%s=%s", kv.Key, kv.Value.Emit())
			}
		}
		if strings.Contains(b.String(), text) {
			t.Errorf("span %q quotes %q: %s", s.Name(), text, b.String())
		}
	}
}

// A job's attempts continue the trace its spec carries: each a queued span
// (from when it became due) parenting its process span, which parents the
// stage, which parents the LM call. The first attempt's 429 makes it a
// retry, saying why and when, and the second attempt's queued span starts
// when the retry became due. No span quotes the question, even with
// LOG_QUESTIONS.
func TestAttemptsContinueTheSpecsTrace(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{MaxAttempts: 3})
	rec := b.traced(t)
	b.startWorker(t, worker.Config{LogQuestions: true})
	const marker = "okapi-vellum-5521"
	req := ask("What is "+marker+"? [[fakelm:429,retry_after=1s,times=1]]", "alice", jobs.Options{})
	req.Spec.Trace = apiParent
	id := b.submit(t, req)
	j := b.waitEnd(t, id)
	if j.Status != jobs.StatusCompleted {
		t.Fatalf("job = %s %+v", j.Status, j.Error)
	}
	all := waitSpans(t, rec, "process interactive", 2)

	queued, process := named(all, "queued interactive"), named(all, "process interactive")
	if len(queued) != 2 || len(process) != 2 {
		t.Fatalf("%d queued and %d process spans, want 2 of each", len(queued), len(process))
	}
	for i := range 2 {
		q, p := queued[i], process[i]
		if q.SpanContext().TraceID().String() != apiTrace || q.Parent().SpanID().String() != apiSpan || !q.Parent().IsRemote() ||
			q.SpanKind() != trace.SpanKindInternal {
			t.Errorf("queued span %d: trace %s parent %s kind %v, want the API's span's child", i+1, q.SpanContext().TraceID(), q.Parent().SpanID(), q.SpanKind())
		}
		if p.Parent().SpanID() != q.SpanContext().SpanID() || p.SpanKind() != trace.SpanKindConsumer || !q.EndTime().Equal(p.StartTime()) {
			t.Errorf("process span %d: parent %s kind %v start %v, want the queued span's child starting as it ends (%v)", i+1,
				p.Parent().SpanID(), p.SpanKind(), p.StartTime(), q.EndTime())
		}
		if attr(p, telemetry.JobID).AsString() != id || attr(p, telemetry.Attempt).AsInt64() != int64(i+1) ||
			attr(p, telemetry.Queue).AsString() != jobs.QueueInteractive || attr(p, telemetry.Program).AsString() != jobs.ProgramQA ||
			attr(p, telemetry.Key).AsString() != "alice" {
			t.Errorf("process span %d attributes %v", i+1, p.Attributes())
		}
		stages := childrenOf(all, p)
		if len(stages) != 1 || !strings.HasPrefix(stages[0].Name(), "stage ") ||
			attr(stages[0], telemetry.Stage).AsString() != strings.TrimPrefix(stages[0].Name(), "stage ") {
			t.Fatalf("attempt %d: stage spans %v, want one naming its stage", i+1, stages)
		}
		chats := childrenOf(all, stages[0])
		if len(chats) != 1 || chats[0].SpanKind() != trace.SpanKindClient || !strings.HasPrefix(chats[0].Name(), "chat ") {
			t.Fatalf("attempt %d: LM call spans %v, want one", i+1, chats)
		}
	}
	if !queued[0].StartTime().Equal(j.CreatedAt) {
		t.Errorf("first queued span starts %v, want the job's creation %v", queued[0].StartTime(), j.CreatedAt)
	}
	// Due: the retry's write (inside the first process span; the record
	// keeps milliseconds) plus its Retry-After.
	if due, from := queued[1].StartTime(), process[0].StartTime().Truncate(time.Millisecond); due.Before(from.Add(time.Second)) || due.After(process[0].EndTime().Add(time.Second)) {
		t.Errorf("second queued span starts %v, want the first attempt's put-back (%v … %v) + 1s", due, process[0].StartTime(), process[0].EndTime())
	}

	first, second := process[0], process[1]
	if first.Status().Code != codes.Error || attr(first, telemetry.RetryReason).AsString() != "lm_error" ||
		attr(first, telemetry.RetryInMS).AsInt64() != 1000 || attr(first, telemetry.ErrorType).AsString() != "429" ||
		fmt.Sprint(eventNames(first)) != "[retry]" {
		t.Errorf("first attempt: status %v, attributes %v, events %v; want a retry after a 429", first.Status(), first.Attributes(), eventNames(first))
	}
	if second.Status().Code == codes.Error || attr(second, telemetry.RetryReason).Type() != attribute.INVALID || len(second.Events()) != 0 {
		t.Errorf("second attempt: status %v, attributes %v, events %v; want it completed", second.Status(), second.Attributes(), eventNames(second))
	}
	stage1 := childrenOf(all, first)[0]
	if chat := childrenOf(all, stage1)[0]; stage1.Status().Code != codes.Error || attr(stage1, telemetry.ErrorType).AsString() != "429" ||
		attr(chat, telemetry.ErrorType).AsString() != "429" {
		t.Errorf("first attempt's stage %v %v and LM call %v, want both failed with the 429", stage1.Status(), stage1.Attributes(), chat.Attributes())
	}
	quoting(t, all, marker)
	answer, _ := j.Result.Outputs.Get("answer")
	if s, _ := answer.(string); len(s) > 12 {
		quoting(t, all, s[:12])
	}
}

// A job whose trace the API did not sample records no span on the worker:
// not its attempt's, its stage's or its LM call's.
func TestUnsampledJobRecordsNoSpan(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	rec := b.traced(t)
	// One slot: the unsampled job's attempt has ended once the sampled
	// job's has.
	b.startWorker(t, worker.Config{Concurrency: 1})
	const unsampledTrace = "0af7651916cd43dd8448eb211c80319c"
	req := ask("What is left untraced?", "o", jobs.Options{})
	req.Spec.Trace = "00-" + unsampledTrace + "-" + apiSpan + "-00"
	id := b.submit(t, req)
	if j := b.waitEnd(t, id); j.Status != jobs.StatusCompleted {
		t.Fatalf("job = %s %+v", j.Status, j.Error)
	}
	req = ask("What is traced?", "o", jobs.Options{})
	req.Spec.Trace = apiParent
	b.waitEnd(t, b.submit(t, req))
	all := waitSpans(t, rec, "process interactive", 1)
	for _, s := range all {
		if s.SpanContext().TraceID().String() != apiTrace {
			t.Errorf("span %q recorded in trace %s, want the sampled job's alone", s.Name(), s.SpanContext().TraceID())
		}
	}
	if n := len(named(all, "process interactive")); n != 1 {
		t.Errorf("%d attempts recorded, want the sampled job's alone", n)
	}
}

// An attempt the shared rate limit defers is named so on its span: the
// reason's code and the wait, an event "deferred", no error (it is not
// counted as an attempt).
func TestDeferredAttemptIsNamed(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	// One call a minute, and no waiting for the next: the second job's call
	// is refused by the limiter before it is sent.
	rec := b.traced(t, func(c *lmclient.Config) { c.RPM, c.MaxWait = 1, time.Millisecond })
	b.startWorker(t, worker.Config{Concurrency: 1})
	first := b.submit(t, ask("What comes first?", "o", jobs.Options{}))
	b.waitEnd(t, first)
	b.submit(t, ask("What waits?", "o", jobs.Options{}))
	var deferred sdktrace.ReadOnlySpan
	testwait.Until(t, "a deferred attempt's span", func() bool {
		for _, s := range named(rec.Ended(), "process interactive") {
			if attr(s, telemetry.RetryReason).AsString() == "rate_limited" {
				deferred = s
				return true
			}
		}
		return false
	})
	if deferred.Status().Code == codes.Error || fmt.Sprint(eventNames(deferred)) != "[deferred]" || attr(deferred, telemetry.RetryInMS).AsInt64() <= 0 {
		t.Errorf("deferred attempt: status %v attributes %v events %v", deferred.Status(), deferred.Attributes(), eventNames(deferred))
	}
	var chats []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if strings.HasPrefix(s.Name(), "chat ") {
			chats = append(chats, s)
		}
	}
	if len(chats) != 2 || attr(chats[1], telemetry.ErrorType).AsString() != "rate_limited" {
		t.Errorf("LM call spans %d, the second's error.type %q, want the limiter's refusal", len(chats), attr(chats[len(chats)-1], telemetry.ErrorType).AsString())
	}
}

// A failure quoting the LM's answer (a parse error) is an error span with
// its code; the answer's text reaches no span.
func TestFailedAttemptSpanHasTheCodeOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{MaxAttempts: 1})
	rec := b.traced(t)
	b.startWorker(t, worker.Config{LogQuestions: true})
	const marker = "tapir-saffron-0937"
	id := b.submit(t, ask("Explain "+marker+" [[fakelm:garbage]]", "o", jobs.Options{}))
	j := b.waitEnd(t, id)
	if j.Status != jobs.StatusFailed || j.Error.Code != "parse_error" {
		t.Fatalf("job = %s %+v, want a parse error", j.Status, j.Error)
	}
	all := waitSpans(t, rec, "process interactive", 1)
	p := named(all, "process interactive")[0]
	if p.Status().Code != codes.Error || attr(p, telemetry.ErrorType).AsString() != "parse_error" || p.Status().Description != "parse_error" {
		t.Errorf("process span status %v attributes %v, want a parse_error", p.Status(), p.Attributes())
	}
	quoting(t, all, marker)
	// The record keeps the message, which quotes the LM's answer.
	if quoted := j.Error.Message; len(quoted) > 40 {
		quoting(t, all, quoted[len(quoted)-40:])
	}
}

// Each stage a multi-stage attempt runs has its span, and the latency
// histogram its sample; a stage a retry resumes from its checkpoint is not
// run again, so it has neither.
func TestStagesAreSpannedAndTimed(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	rec := b.traced(t)
	b.serveClaims(t)
	reg := prometheus.NewRegistry()
	b.metrics = worker.NewMetrics(reg)
	b.startWorker(t, worker.Config{})
	id := b.submit(t, claimsJob("Sky: blue. [[fakelm:429,times=1,retry_after=1ms]]"))
	b.waitCompleted(t, id)
	all := waitSpans(t, rec, "process interactive", 2)
	process := named(all, "process interactive")
	stageNames := func(p sdktrace.ReadOnlySpan) string {
		var out []string
		for _, s := range childrenOf(all, p) {
			out = append(out, s.Name()+":"+s.Status().Code.String())
		}
		return strings.Join(out, ",")
	}
	if got := stageNames(process[0]); got != "stage extract.predict:Unset,stage verify:Error" {
		t.Errorf("first attempt's stages %s", got)
	}
	if got := stageNames(process[1]); got != "stage verify:Unset" {
		t.Errorf("second attempt's stages %s, want verify alone (extract.predict resumed)", got)
	}
	if v := attr(process[1], telemetry.ProgramVersion).AsString(); v != claimsVersion {
		t.Errorf("qa.program.version = %q, want %s", v, claimsVersion)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "qa_worker_stage_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			counts[labels["program"]+"/"+labels["stage"]] += m.GetHistogram().GetSampleCount()
		}
	}
	if want := map[string]uint64{"claims/extract.predict": 1, "claims/verify": 1}; fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("qa_worker_stage_seconds samples %v, want %v (the failed verify not timed)", counts, want)
	}
}

// A batch item's attempt starts a trace of its own (the sampler decides per
// item), linked to the batch's, with the batch and the item named.
func TestBatchItemsStartTracesLinkedToTheirBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	rec := b.traced(t)
	b.startWorker(t, worker.Config{})
	ctx := context.Background()
	spec := jobs.Spec{ClientSpec: jobs.ClientSpec{Program: jobs.ProgramQA}, ServerSpec: jobs.ServerSpec{Owner: "o", Trace: apiParent}}
	u, err := b.batches.BeginUpload(ctx, batches.UploadRequest{Spec: spec, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := u.Add(ctx, jobs.BatchItem{CustomID: fmt.Sprint(i), Inputs: jobs.Inputs{"question": fmt.Sprintf("What is item %d?", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := u.Commit(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	all := waitSpans(t, rec, "process batch", 2)
	items := map[int64]bool{}
	traces := map[trace.TraceID]bool{}
	for _, p := range named(all, "process batch") {
		tid := p.SpanContext().TraceID()
		if p.Parent().IsValid() || tid.String() == apiTrace || len(p.Links()) != 1 ||
			p.Links()[0].SpanContext.TraceID().String() != apiTrace || p.Links()[0].SpanContext.SpanID().String() != apiSpan {
			t.Errorf("item span: parent %v trace %s links %v, want a root linked to the batch's span", p.Parent(), tid, p.Links())
		}
		if attr(p, telemetry.BatchID).AsString() != c.Batch.ID {
			t.Errorf("item span attributes %v", p.Attributes())
		}
		items[attr(p, telemetry.BatchItem).AsInt64()] = true
		traces[tid] = true
		if st := childrenOf(all, p); len(st) != 1 || len(childrenOf(all, st[0])) != 1 {
			t.Errorf("item span's stages %v, want one with its LM call", st)
		}
	}
	if len(items) != 2 || !items[0] || !items[1] || len(traces) != 2 {
		t.Errorf("items %v in traces %v, want items 0 and 1 in a trace each", items, traces)
	}
	if q := named(all, "queued batch"); len(q) != 0 {
		t.Errorf("%d queued spans for batch items, want none", len(q))
	}
}

// Each run of a provider-mode batch's offload task is a span of its own,
// linked to the batch's trace.
func TestOffloadRunsLinkToTheirBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	rec := b.traced(t)
	api, err := b.lc.BatchAPI()
	if err != nil {
		t.Fatal(err)
	}
	r, err := offload.New(offload.Config{PollInterval: time.Millisecond, PollMax: time.Millisecond},
		offload.Deps{Batches: b.batches, Programs: qaPrograms(t), LM: b.lc, Provider: api, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	b.offload = r
	b.startWorker(t, worker.Config{})
	ctx := context.Background()
	spec := jobs.Spec{ClientSpec: jobs.ClientSpec{Program: jobs.ProgramQA}, ServerSpec: jobs.ServerSpec{Owner: "o", Trace: apiParent}}
	u, err := b.batches.BeginUpload(ctx, batches.UploadRequest{Spec: spec, TTL: time.Hour, Mode: jobs.BatchModeProvider})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Add(ctx, jobs.BatchItem{CustomID: "0", Inputs: jobs.Inputs{"question": "What is offloading?"}}); err != nil {
		t.Fatal(err)
	}
	c, err := u.Commit(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	name := "process " + jobs.QueueBatchProvider
	all := waitSpans(t, rec, name, 1)
	p := named(all, name)[0]
	if p.Parent().IsValid() || p.SpanKind() != trace.SpanKindConsumer || len(p.Links()) != 1 ||
		p.Links()[0].SpanContext.TraceID().String() != apiTrace || attr(p, telemetry.BatchID).AsString() != c.Batch.ID {
		t.Errorf("offload span: parent %v kind %v links %v attributes %v, want a root linked to the batch's span",
			p.Parent(), p.SpanKind(), p.Links(), p.Attributes())
	}
	if p.Status().Code == codes.Error {
		t.Errorf("offload span status %v", p.Status())
	}
}

// qaPrograms serves the built-in qa program.
func qaPrograms(t *testing.T) worker.StaticPrograms {
	t.Helper()
	qa, err := worker.BuiltinQA(program.NewQA())
	if err != nil {
		t.Fatal(err)
	}
	return worker.StaticPrograms{{Name: jobs.ProgramQA}: qa}
}
