package telemetry

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// w3c reads and writes traceparent and tracestate only: an incoming
// baggage header is never read, so a client cannot put entries into our
// context (or our spans).
var w3c propagation.TraceContext

const traceparentHeader = "traceparent"

// Inject returns the W3C traceparent of the span in ctx, for a job spec to
// carry; "" when ctx holds no valid span context. An unsampled context is
// carried too, so the workers keep the API's decision not to sample.
func Inject(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	w3c.Inject(ctx, c)
	return c[traceparentHeader]
}

// Extract returns ctx with the span traceparent names as its remote parent;
// ctx unchanged when traceparent is empty or malformed.
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return w3c.Extract(ctx, propagation.MapCarrier{traceparentHeader: traceparent})
}

// SpanContext is the remote span context traceparent names, for a link
// (a batch item's spans link to their batch's); invalid when traceparent
// is empty or malformed.
func SpanContext(traceparent string) trace.SpanContext {
	return trace.SpanContextFromContext(Extract(context.Background(), traceparent))
}

// FromHeaders returns ctx with the remote parent an incoming request's
// traceparent (and tracestate) name. Only authenticated requests may
// continue a caller's trace: the API calls it after authentication.
func FromHeaders(ctx context.Context, h http.Header) context.Context {
	return w3c.Extract(ctx, propagation.HeaderCarrier(h))
}
