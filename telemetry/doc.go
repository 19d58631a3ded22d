// Package telemetry owns qaqueue's OpenTelemetry traces: it builds the
// tracer provider from the standard OTEL_* settings (OTLP over HTTP or
// gRPC; off unless an endpoint or exporter is named), carries a trace's
// W3C context in and out of a job spec, and names the spans' attributes.
//
// One job is one trace. The API's request span parents the enqueue span,
// whose context the job spec keeps (jobs.ServerSpec.Trace); each worker
// attempt continues it, so a retry on another worker joins the same trace;
// stages and LM calls nest inside the attempt. Batch items start traces of
// their own, linked to their batch's, so OTEL_TRACES_SAMPLER decides how
// many of a large batch's items are kept.
//
// Spans carry ids, counts, models and error codes, never question, answer
// or LM text (LOG_QUESTIONS does not change that). With tracing off,
// [Tracing.Provider] is nil and callers skip their tracing work: no span,
// no trace context in the spec.
package telemetry
