package telemetry_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/internal/otlptest"
	"github.com/qaqueue/qaqueue/telemetry"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestInjectExtractRoundTrip(t *testing.T) {
	ctx := telemetry.Extract(context.Background(), parent)
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsRemote() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" || !sc.IsSampled() {
		t.Fatalf("extracted %+v", sc)
	}
	if got := telemetry.Inject(ctx); got != parent {
		t.Fatalf("Inject = %q, want %q", got, parent)
	}
	if got := telemetry.SpanContext(parent); !got.Equal(sc) {
		t.Fatalf("SpanContext = %+v, want %+v", got, sc)
	}
}

func TestMalformedOrEmptyContextIsNone(t *testing.T) {
	for _, tp := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"} {
		if sc := telemetry.SpanContext(tp); sc.IsValid() {
			t.Errorf("SpanContext(%q) is valid: %+v", tp, sc)
		}
		if got := telemetry.Inject(telemetry.Extract(context.Background(), tp)); got != "" {
			t.Errorf("Inject(Extract(%q)) = %q, want none", tp, got)
		}
	}
}

func TestFromHeadersDropsBaggage(t *testing.T) {
	h := http.Header{}
	h.Set("traceparent", parent)
	h.Set("tracestate", "vendor=1")
	h.Set("baggage", "user=alice")
	ctx := telemetry.FromHeaders(context.Background(), h)
	sc := trace.SpanContextFromContext(ctx)
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.TraceState().Get("vendor") != "1" {
		t.Fatalf("span context %+v", sc)
	}
	if n := baggage.FromContext(ctx).Len(); n != 0 {
		t.Fatalf("baggage read from the request: %d members", n)
	}
}

func TestBadSettingsNameTheirVariable(t *testing.T) {
	for _, c := range []struct {
		cfg  telemetry.Config
		want string
	}{
		{telemetry.Config{Exporter: "zipkin"}, "OTEL_TRACES_EXPORTER"},
		{telemetry.Config{Sampler: "sometimes"}, "OTEL_TRACES_SAMPLER="},
		{telemetry.Config{Sampler: "traceidratio", SamplerArg: "2"}, "OTEL_TRACES_SAMPLER_ARG"},
		{telemetry.Config{Endpoint: "localhost:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{telemetry.Config{TracesEndpoint: "ftp://x/v1/traces"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{telemetry.Config{Endpoint: "http://x:4318", Protocol: "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{telemetry.Config{Endpoint: "http://x:4318", Headers: "novalue"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{telemetry.Config{Endpoint: "http://x:4318", ResourceAttributes: "a=%zz"}, "OTEL_RESOURCE_ATTRIBUTES"},
	} {
		_, err := telemetry.New(context.Background(), c.cfg, telemetry.Options{Process: "api"})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want one naming %s", c.cfg, err, c.want)
		}
	}
}

func TestOffBuildsNothing(t *testing.T) {
	for _, c := range []telemetry.Config{
		{},
		{Exporter: "none", Endpoint: "http://x:4318"},
		{Disabled: true, Endpoint: "http://x:4318"},
	} {
		tr, err := telemetry.New(context.Background(), c, telemetry.Options{Process: "api"})
		if err != nil {
			t.Fatal(err)
		}
		if tr.Provider() != nil {
			t.Errorf("%+v: tracing on", c)
		}
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}
	if telemetry.OrNoop(nil) == nil {
		t.Fatal("OrNoop(nil) is nil")
	}
}

func TestExportsToTheEndpoint(t *testing.T) {
	rcv := otlptest.Start()
	defer rcv.Close()
	ctx := context.Background()
	tr, err := telemetry.New(ctx, telemetry.Config{Endpoint: rcv.URL + "/", ResourceAttributes: "deployment.environment=test",
		Headers: "x-token=a%20b"}, telemetry.Options{Process: "worker", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider().Tracer("test").Start(telemetry.Extract(ctx, parent), "work")
	span.SetAttributes(telemetry.JobID.String("j1"))
	span.End()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Spans()
	if len(spans) != 1 {
		t.Fatalf("received %d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name != "work" || s.Service != "qaqueue-worker" || s.ParentID != "00f067aa0ba902b7" ||
		s.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Attrs["qa.job.id"] != "j1" {
		t.Fatalf("span %+v", s)
	}
}

func TestSamplerIsHonoured(t *testing.T) {
	rcv := otlptest.Start()
	defer rcv.Close()
	ctx := context.Background()
	tr, err := telemetry.New(ctx, telemetry.Config{Endpoint: rcv.URL, Sampler: "always_off", ServiceName: "svc"}, telemetry.Options{Process: "api"})
	if err != nil {
		t.Fatal(err)
	}
	sctx, span := tr.Provider().Tracer("test").Start(ctx, "dropped")
	span.End()
	// Not sampled, but still carried: the workers keep the decision.
	tp := telemetry.Inject(sctx)
	if tp == "" || !strings.HasSuffix(tp, "-00") {
		t.Fatalf("Inject of an unsampled span = %q, want a traceparent flagged 00", tp)
	}
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(rcv.Spans()); n != 0 {
		t.Fatalf("always_off exported %d spans", n)
	}
}
