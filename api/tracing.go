package api

import (
	"context"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/programs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// The API's spans (issue 18; package telemetry owns the names and the
// propagation): a server span per request of the API proper, "send
// <queue>" around each enqueue (its context is the job's spec.Trace, which
// every worker attempt continues), and "relay events" around an SSE relay.
// All of it happens only when Deps.Tracing is set: otherwise no middleware
// is installed and the handlers skip their spans (s.tracer is nil), so a
// request costs what it did before tracing existed.
//
// Spans carry ids, names, counts and status codes: never a question,
// inputs, an answer or LM text, whatever LOG_QUESTIONS says, and never an
// error's message (it may quote an input): error.type is a code.

// tracerName is the instrumentation scope of the API's spans.
const tracerName = "github.com/qaqueue/qaqueue/api"

// relaySpanName names the span of an SSE relay.
const relaySpanName = "relay events"

// newTracer is the API's tracer; nil when tracing is off.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(tracerName)
}

// traced reports whether requests to path get a server span: the API
// proper only. The probes, /metrics and the dashboard are polled by
// machines every few seconds and the documents fetched by browsers; none
// of them touches a job, and their spans would drown the jobs' traces (and
// cost the sampler's budget).
func (s *Server) traced(path string) bool {
	return s.accessOf(path) == accessUser
}

// traceRequest is the server span of a request: "<METHOD> <route>". It runs
// after authenticate, so it sees who the request acts for: only a request
// that presented a valid API key continues the caller's W3C traceparent
// (telemetry.FromHeaders: baggage is never read); an anonymous one starts
// a new trace, so nobody unauthenticated can join or steer our traces.
// Installed only when tracing is on.
func (s *Server) traceRequest(c *gin.Context) {
	if !s.traced(c.Request.URL.Path) {
		c.Next()
		return
	}
	ctx := c.Request.Context()
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	key, authenticated := c.Get(ownerKey)
	if authenticated {
		ctx = telemetry.FromHeaders(ctx, c.Request.Header)
	} else {
		opts = append(opts, trace.WithNewRoot())
	}
	method := spanMethod(c.Request.Method)
	name, route := method, c.FullPath()
	attrs := make([]attribute.KeyValue, 0, 3)
	attrs = append(attrs, semconv.HTTPRequestMethodKey.String(method))
	if route != "" {
		name += " " + route
		attrs = append(attrs, semconv.HTTPRouteKey.String(route))
	}
	if k, _ := key.(string); k != "" {
		attrs = append(attrs, telemetry.Key.String(k))
	}
	ctx, span := s.tracer.Start(ctx, name, append(opts, trace.WithAttributes(attrs...))...)
	defer span.End()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
	status := c.Writer.Status()
	span.SetAttributes(semconv.HTTPResponseStatusCodeKey.Int(status))
	if status >= 500 {
		// A server span's 4xx is the client's doing: not an error of ours.
		span.SetAttributes(telemetry.ErrorType.String(strconv.Itoa(status)))
		span.SetStatus(codes.Error, "")
	}
}

// spanMethod is a request's method as a span names it: a client chooses
// it, so anything but the standard methods is "_OTHER" (OpenTelemetry's
// HTTP conventions), which keeps span names a bounded set.
func spanMethod(m string) string {
	if standardMethod(m) {
		return m
	}
	return "_OTHER"
}

// startSend starts the enqueue span "send <queue>" of spec, a child of the
// request's span, and puts its context into spec.Trace: the workers
// continue the job's trace from it. A replay (Idempotency-Key) keeps the
// first submit's trace: the record is not rewritten. With tracing off it
// does nothing and returns a nil span.
func (s *Server) startSend(ctx context.Context, spec *jobs.Spec) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, nil
	}
	queue := spec.Queue
	if queue == "" {
		queue = jobs.QueueInteractive
	}
	// The program's name, as the worker's spans and the metrics name it
	// (an alias is the request's way to reach a version, not the program).
	name, _ := programs.SplitRef(spec.Program)
	attrs := []attribute.KeyValue{telemetry.Queue.String(queue), telemetry.Program.String(name)}
	if spec.ProgramVersion != "" {
		attrs = append(attrs, telemetry.ProgramVersion.String(spec.ProgramVersion))
	}
	if spec.Owner != "" {
		attrs = append(attrs, telemetry.Key.String(spec.Owner))
	}
	ctx, span := s.tracer.Start(ctx, "send "+queue, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	spec.Trace = telemetry.Inject(ctx)
	return ctx, span
}

// endSend ends an enqueue span (nil: tracing is off) with what the enqueue
// gave: the id it named (attr, a job's or a batch's), or its error's class
// (the code of its answer).
func (s *Server) endSend(ctx context.Context, span trace.Span, attr attribute.Key, id string, err error) {
	if span == nil {
		return
	}
	if id != "" {
		span.SetAttributes(attr.String(id))
	}
	if err != nil {
		failSpan(span, s.classify(ctx, err).code)
	}
	span.End()
}

// failSpan marks span failed with errorType, a class or code (never a
// message: it may quote an input).
func failSpan(span trace.Span, errorType string) {
	span.SetAttributes(telemetry.ErrorType.String(errorType))
	span.SetStatus(codes.Error, "")
}

// submittedID is the id of the job sub names; "" for none.
func submittedID(sub *store.Submitted) string {
	if sub == nil {
		return ""
	}
	return sub.Job.ID
}

// relaySpan is the span of one SSE relay; its zero value (tracing off)
// does nothing.
type relaySpan struct {
	span trace.Span
}

// startRelay starts "relay events", a child of the request's span, linked
// to the trace of what it relays (traceparent, a job's or batch's
// spec.Trace, "" when the job was submitted with tracing off or its relay
// is inside that trace already: /predict/stream). The returned ctx is
// unchanged when tracing is off.
func (s *Server) startRelay(ctx context.Context, traceparent string, attrs ...attribute.KeyValue) (context.Context, relaySpan) {
	if s.tracer == nil {
		return ctx, relaySpan{}
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(attrs...)}
	if sc := telemetry.SpanContext(traceparent); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	ctx, span := s.tracer.Start(ctx, relaySpanName, opts...)
	return ctx, relaySpan{span: span}
}

// end ends the relay's span with the number of events it sent and how the
// relay ended: an error, or a subscriber dropped for falling behind, is a
// failed relay; a client that went away (ctx, the request's, is done) is
// how streams usually end, and no failure.
func (r relaySpan) end(ctx context.Context, events int, end store.FollowEnd, err error) {
	if r.span == nil {
		return
	}
	r.span.SetAttributes(telemetry.EventsRelayed.Int(events))
	switch {
	case err != nil && ctx.Err() == nil:
		failSpan(r.span, "relay_error")
	case end == store.EndSlow:
		failSpan(r.span, "slow_subscriber")
	}
	r.span.End()
}
