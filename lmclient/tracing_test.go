package lmclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// withTracing records the client's spans.
func withTracing(t testing.TB) (func(*Config, *Deps), *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return func(_ *Config, d *Deps) { d.Tracing = tp }, rec
}

// attrs is a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// noText fails if a span's name, attributes, events or status quote s.
func noText(t *testing.T, spans []sdktrace.ReadOnlySpan, s string) {
	t.Helper()
	for _, sp := range spans {
		var b strings.Builder
		b.WriteString(sp.Name() + sp.Status().Description)
		for _, kv := range sp.Attributes() {
			fmt.Fprintf(&b, "%s=%s;", kv.Key, kv.Value.Emit())
		}
		for _, e := range sp.Events() {
			b.WriteString(e.Name)
			for _, kv := range e.Attributes {
				fmt.Fprintf(&b, "%s=%s;", kv.Key, kv.Value.Emit())
			}
		}
		if strings.Contains(b.String(), s) {
			t.Errorf("span %q quotes %q: %s", sp.Name(), s, b.String())
		}
	}
}

func TestCompleteIsAChatSpan(t *testing.T) {
	t.Parallel()
	tracing, rec := withTracing(t)
	b := setup(t, tracing, func(c *Config, _ *Deps) { c.MemoryEnabled = true })
	ctx := ctxT(t)
	const marker = "zebra-quartz-7741"
	req := chatRequest("What does " + marker + " mean?")
	comp, err := b.c.Complete(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.c.Accept(ctx, req, comp); err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.Complete(ctx, req); err != nil { // the memory layer answers
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2 (a call and a cache hit)", len(spans))
	}
	call, hit := spans[0], spans[1]
	for _, s := range spans {
		a := attrs(s)
		if s.Name() != "chat gpt-4o-mini" || s.SpanKind() != trace.SpanKindClient ||
			a[telemetry.GenAIOperationName].AsString() != "chat" || a[telemetry.GenAIProviderName].AsString() != "openai" ||
			a[telemetry.GenAIRequestModel].AsString() != "gpt-4o-mini" || s.Status().Code == codes.Error {
			t.Errorf("span %q kind %v status %v attrs %v", s.Name(), s.SpanKind(), s.Status(), a)
		}
	}
	a := attrs(call)
	if a[telemetry.LMCacheHit].AsBool() || a[telemetry.GenAIResponseModel].AsString() == "" ||
		a[telemetry.GenAIUsageInputTokens].AsInt64() <= 0 || a[telemetry.GenAIUsageOutputTokens].AsInt64() <= 0 ||
		fmt.Sprint(a[telemetry.GenAIResponseFinishReasons].AsStringSlice()) != "[stop]" {
		t.Errorf("call span attrs %v", a)
	}
	a = attrs(hit)
	if !a[telemetry.LMCacheHit].AsBool() {
		t.Errorf("cache hit span attrs %v", a)
	}
	if _, ok := a[telemetry.GenAIUsageInputTokens]; ok {
		t.Errorf("a cache hit reports usage: %v", a)
	}
	noText(t, spans, marker)
	noText(t, spans, "[[ ## ") // nothing of the prompt or the answer
}

func TestStreamedCompleteNamesTheAnsweringModel(t *testing.T) {
	t.Parallel()
	tracing, rec := withTracing(t)
	b := setup(t, tracing)
	req, _ := streamed(chatRequest("Which model streams this?"))
	req.NoCache = true
	if _, err := b.c.Complete(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	a := attrs(spans[0])
	if a[telemetry.GenAIResponseModel].AsString() == "" || a[telemetry.GenAIUsageOutputTokens].AsInt64() <= 0 {
		t.Errorf("streamed call span attrs %v", a)
	}
}

func TestFailedCompleteSpanHasTheErrorTypeOnly(t *testing.T) {
	t.Parallel()
	tracing, rec := withTracing(t)
	b := setup(t, tracing)
	const marker = "walrus-ochre-1893"
	b.srv.FailNext(1, fakelm.Status429(2*time.Second))
	req := chatRequest("Is " + marker + " rate limited?")
	req.NoCache = true
	_, err := b.c.Complete(ctxT(t), req)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 429 {
		t.Fatalf("err = %v, want a 429", err)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if a := attrs(s); a[telemetry.ErrorType].AsString() != "429" || s.Status().Code != codes.Error || s.Status().Description != "429" {
		t.Errorf("span status %v attrs %v", s.Status(), a)
	}
	if len(s.Events()) != 0 {
		t.Errorf("events %v: an error's message must not be recorded", s.Events())
	}
	noText(t, spans, marker)
}

func TestErrorType(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want string
	}{
		{&APIError{Status: 503, Message: "quote of the prompt"}, "503"},
		{fmt.Errorf("call: %w", &APIError{Code: CodeTruncated}), "truncated"},
		{&RateLimitedError{Delay: time.Minute}, "rate_limited"},
		{&ConfigError{Msg: "no key"}, "config_error"},
		{fmt.Errorf("call lm: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("call lm: %w", context.Canceled), "canceled"},
		{errors.New("something else"), "_OTHER"},
	} {
		if got := ErrorType(c.err); got != c.want {
			t.Errorf("ErrorType(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// TestCompleteTracedAllocs bounds what a recorded span adds to an
// uncached call (TestCompleteAllocs bounds the call without tracing, which
// does no tracing work at all): 341 allocations without, 352 with.
func TestCompleteTracedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	tracing, _ := withTracing(t)
	const question = "How many allocations does one traced call take?"
	off, on := completeAllocs(t, question), completeAllocs(t, question, tracing)
	t.Logf("%.0f allocations per Complete untraced, %.0f traced", off, on)
	if on-off > 25 {
		t.Errorf("a traced Complete takes %.0f allocations more than an untraced one, want at most 25", on-off)
	}
}

// BenchmarkCompleteTracing is an uncached call and a memory-cache hit,
// untraced and traced (every span sampled and exported in batches to an
// exporter that drops them): what tracing adds to one LM call.
func BenchmarkCompleteTracing(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, tracing := range []string{"off", "on"} {
		for _, hit := range []bool{false, true} {
			name := tracing + "/call"
			if hit {
				name = tracing + "/cache_hit"
			}
			b.Run(name, func(b *testing.B) {
				bb := setup(b, func(c *Config, d *Deps) {
					c.MemoryEnabled = true
					if tracing == "on" {
						d.Tracing = tp
					}
				})
				ctx := ctxT(b)
				req := chatRequest("What does tracing cost a call?")
				req.SkipCacheRead = !hit
				comp, err := bb.c.Complete(ctx, req)
				if err == nil {
					err = bb.c.Accept(ctx, req, comp)
				}
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if c, err := bb.c.Complete(ctx, req); err != nil || c.CacheHit != hit {
						b.Fatalf("complete: %v (cache hit %v, want %v)", err, c != nil && c.CacheHit, hit)
					}
				}
			})
		}
	}
}
