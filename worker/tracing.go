package worker

import (
	"context"
	"strconv"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/programrun"
	"github.com/qaqueue/qaqueue/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Traces. With Deps.Tracing each attempt of a job continues the trace its
// spec carries (jobs.ServerSpec.Trace, the API's enqueue span), so a retry
// on another worker joins the same trace:
//
//	queued <queue>   internal: from when the attempt became due
//	 │                (store.Attempt.Due: the job's creation, or the end of
//	 │                its retry's delay) to the attempt's start
//	 └ process <queue>  consumer: the attempt, start to settled
//	    └ stage <key>   internal: each stage the attempt runs (program.go)
//	       └ chat <model>  the LM client's
//
// A batch item's attempt starts a trace of its own (so OTEL_TRACES_SAMPLER
// decides per item), linked to its batch's; it has no queued span, since no
// item records when it became due. The process span names the outcome: a
// retry is an error with qa.retry.reason (the failure's code, never its
// message, which may quote LM text), qa.retry.in_ms and an event "retry";
// a failure an error with error.type; a deferral, a cancel or a put-back
// at shutdown an event of that name. An attempt its start does not run
// (ended, gone, over budget) has no span: the start read no trace. Each
// run of a provider-mode batch's offload task is a root span linked to the
// batch's trace. A spec whose trace was not sampled gets no recorded span
// (the sampler follows its parent), its stages and LM calls none either.
// Without Deps.Tracing none of this runs.

// tracerName is the instrumentation scope of the worker's spans.
const tracerName = "github.com/qaqueue/qaqueue/worker"

// traceAttempt starts a started attempt's spans, the attempt having begun
// at began, and returns the context its run takes (the process span's).
func (w *Worker) traceAttempt(ctx context.Context, a *attempt, began time.Time) context.Context {
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, telemetry.Attempt.Int(a.number), telemetry.Queue.String(a.queue),
		telemetry.Program.String(programrun.ProgramName(a.spec.Program)), telemetry.Key.String(a.spec.Owner))
	if a.spec.ProgramVersion != "" {
		attrs = append(attrs, telemetry.ProgramVersion.String(a.spec.ProgramVersion))
	}
	process := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(began)}
	if b := a.spec.Batch; b != nil {
		// A new root, linked to the batch's trace.
		attrs = append(attrs, telemetry.BatchID.String(b.ID), telemetry.BatchItem.Int(b.Index))
		process = append(process, trace.WithNewRoot())
		if sc := telemetry.SpanContext(a.spec.Trace); sc.IsValid() {
			process = append(process, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	} else {
		attrs = append(attrs, telemetry.JobID.String(a.runID))
		ctx = telemetry.Extract(ctx, a.spec.Trace)
		if !a.due.IsZero() {
			// Clocks of other machines may put due a little after began.
			due := a.due
			if due.After(began) {
				due = began
			}
			var queued trace.Span
			ctx, queued = w.tracer.Start(ctx, "queued "+a.queue, trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithTimestamp(due), trace.WithAttributes(attrs...))
			queued.End(trace.WithTimestamp(began))
		}
	}
	ctx, a.span = w.tracer.Start(ctx, "process "+a.queue, append(process, trace.WithAttributes(attrs...))...)
	return ctx
}

// endAttempt names the attempt's outcome on its process span and ends it;
// settleErr is what settle returned.
func endAttempt(a *attempt, v verdict, settleErr error) {
	span := a.span
	defer span.End()
	if !span.IsRecording() {
		return
	}
	switch a.outcome {
	case "completed":
	case "retried", "deferred":
		span.SetAttributes(telemetry.RetryReason.String(v.reason.Code), telemetry.RetryInMS.Int64(v.delay.Milliseconds()))
		if a.outcome == "deferred" {
			span.AddEvent("deferred")
			return
		}
		span.AddEvent("retry")
		setError(span, reasonType(v.reason))
	case "failed":
		setError(span, reasonType(v.reason))
	case "cancelled":
		span.AddEvent("cancelled")
	case "requeued":
		span.AddEvent("requeued")
		setError(span, reasonType(v.reason))
	default:
		if settleErr != nil {
			// settle could not write the outcome (Redis): asynq runs it again.
			setError(span, "write_failed")
		}
	}
}

// setError marks span failed with error.type typ, its description too.
func setError(span trace.Span, typ string) {
	span.SetAttributes(telemetry.ErrorType.String(typ))
	span.SetStatus(codes.Error, typ)
}

// reasonType is a failure's error.type: the LM's HTTP status when it
// answered with one (as the LM call's span has it), else the code.
func reasonType(e *jobs.Error) string {
	switch {
	case e == nil:
		return "_OTHER"
	case e.Status != 0:
		return strconv.Itoa(e.Status)
	}
	return e.Code
}

// traceStage starts stage key's span when ctx holds a recording span (an
// attempt's, which the worker's Deps.Tracing started): the stage's run
// takes the context returned; end ends the span with the run's error. With
// nothing recording in ctx it returns ctx and a nil span, and costs
// nothing.
func traceStage(ctx context.Context, key string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, nil
	}
	return parent.TracerProvider().Tracer(tracerName).Start(ctx, "stage "+key,
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(telemetry.Stage.String(key)))
}

// endStage ends a stage's span (nil: none), an error with the failure's
// code if the stage failed. ctx is the run's (its cause tells a cancel).
func endStage(ctx context.Context, span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		typ := "cancelled"
		if v := classify(ctx, err, 1, true, defaultBackoff); v.reason != nil {
			typ = reasonType(v.reason)
		}
		setError(span, typ)
	}
	span.End()
}

// traceOffload starts the span of one run of a provider-mode batch's
// offload task: a trace of its own, as a batch item's (the batch's provider
// work goes on for hours, one run per look), linked to the batch's trace,
// which its record's spec holds. Reading the record costs a round trip, made
// only when tracing; a batch it cannot read gets no link.
func (w *Worker) traceOffload(ctx context.Context, batchID string) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot(),
		trace.WithAttributes(telemetry.BatchID.String(batchID), telemetry.Queue.String(jobs.QueueBatchProvider))}
	if bt, err := w.deps.Batches.Get(ctx, batchID); err == nil {
		if sc := telemetry.SpanContext(bt.Spec.Trace); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	return w.tracer.Start(ctx, "process "+jobs.QueueBatchProvider, opts...)
}

// endOffload ends an offload run's span: a wait for the provider is an
// event "wait" with qa.retry.in_ms, a failure an error with its type.
func endOffload(span trace.Span, wait time.Duration, err error) {
	switch {
	case err != nil:
		setError(span, lmclient.ErrorType(err))
	case wait > 0:
		span.SetAttributes(telemetry.RetryInMS.Int64(wait.Milliseconds()))
		span.AddEvent("wait")
	}
	span.End()
}
