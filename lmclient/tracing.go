package lmclient

import (
	"context"
	"errors"
	"strconv"

	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing. With Deps.Tracing each Complete is a "chat <model>" client span
// with OpenTelemetry's GenAI attributes (operation, provider, requested and
// answering model, token usage, finish reason), qa.lm.cache_hit (a cache hit
// is a span too) and, on failure, error.type: the HTTP status, or the
// failure's code (rate_limited, timeout, connection, truncated, …). A span
// never holds the messages, the answer or an error's message, which may
// quote either. Without Deps.Tracing, Complete starts no span and does no
// tracing work.

// chatTracer is what a traced Client keeps for its spans, built once.
type chatTracer struct {
	tracer trace.Tracer
	// name is the span's name, "chat <wire model>".
	name string
	// start are the options every span starts with: its kind and the
	// request's attributes.
	start []trace.SpanStartOption
}

// newChatTracer is the client's tracer; nil when tp is (tracing off).
func newChatTracer(tp trace.TracerProvider, prov Provider) *chatTracer {
	if tp == nil {
		return nil
	}
	return &chatTracer{
		tracer: tp.Tracer("github.com/qaqueue/qaqueue/lmclient"),
		name:   "chat " + prov.WireModel,
		start: []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(
				telemetry.GenAIOperationName.String("chat"),
				telemetry.GenAIProviderName.String(genAIProvider(prov.Name)),
				telemetry.GenAIRequestModel.String(prov.WireModel),
			),
		},
	}
}

// completeTraced is Complete inside its span.
func (c *Client) completeTraced(ctx context.Context, req *program.Request) (*program.Completion, error) {
	ctx, span := c.tracer.tracer.Start(ctx, c.tracer.name, c.tracer.start...)
	defer span.End()
	if !span.IsRecording() {
		// Not sampled: nothing to learn for it.
		return c.complete(ctx, req, nil)
	}
	var model string
	comp, err := c.complete(ctx, req, &model)
	if err != nil {
		typ := ErrorType(err)
		span.SetAttributes(telemetry.ErrorType.String(typ))
		span.SetStatus(codes.Error, typ)
		return nil, err
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, telemetry.LMCacheHit.Bool(comp.CacheHit))
	if model != "" {
		attrs = append(attrs, telemetry.GenAIResponseModel.String(model))
	}
	if comp.FinishReason != "" {
		attrs = append(attrs, telemetry.GenAIResponseFinishReasons.StringSlice([]string{comp.FinishReason}))
	}
	if !comp.CacheHit {
		in, out := usageTokens(comp.Usage)
		attrs = append(attrs, telemetry.GenAIUsageInputTokens.Int64(in), telemetry.GenAIUsageOutputTokens.Int64(out))
	}
	span.SetAttributes(attrs...)
	return comp, nil
}

// ErrorType is a failed call's error.type for a span: the HTTP status of a
// provider's error, else the failure's class (rate_limited for the shared
// limit's refusal; timeout, connection or truncated for a transport
// failure; config_error; canceled). Never a message, which may quote the
// prompt.
func ErrorType(err error) string {
	var (
		ae *APIError
		rl *RateLimitedError
		ce *ConfigError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &rl):
		return "rate_limited"
	case errors.As(err, &ae) && ae.Status != 0:
		return strconv.Itoa(ae.Status)
	case errors.As(err, &ae) && ae.Code != "":
		return ae.Code
	case errors.As(err, &ce):
		return "config_error"
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "_OTHER" // OpenTelemetry's value for a class it has no name for
}

// genAIProvider is OpenTelemetry's gen_ai.provider.name for a LiteLLM
// provider prefix: the conventions' well-known value where there is one,
// else the prefix.
func genAIProvider(name string) string {
	switch name {
	case "azure":
		return "azure.ai.openai"
	case "gemini":
		return "gcp.gemini"
	case "mistral":
		return "mistral_ai"
	}
	return name
}
