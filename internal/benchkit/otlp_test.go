package benchkit

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// exportSpans exports n spans (a root and its children) to the sink with
// the SDK's own OTLP/HTTP exporter, as a qa process would, and flushes.
func exportSpans(t *testing.T, sink *OTLPSink, n int, opts ...otlptracehttp.Option) {
	t.Helper()
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, append([]otlptracehttp.Option{otlptracehttp.WithEndpointURL(sink.Endpoint() + "/v1/traces")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	tr := tp.Tracer("benchkit-test")
	rctx, root := tr.Start(ctx, "root")
	for range n - 1 {
		_, child := tr.Start(rctx, "child")
		child.End()
	}
	root.End()
	if err := tp.Shutdown(ctx); err != nil { // flushes; fails if the sink refused
		t.Fatalf("export to the sink: %v", err)
	}
}

// The sink counts what the SDK's exporter sends, plain and gzipped, and
// answers it as a collector would (the exporter's Shutdown reports no
// error).
func TestOTLPSinkCountsExports(t *testing.T) {
	t.Parallel()
	sink, err := StartOTLPSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	exportSpans(t, sink, 3)
	first := sink.Counts()
	if first.Spans != 3 || first.Requests < 1 || first.Bytes <= 0 || first.Rejected != 0 {
		t.Fatalf("after 3 spans: %+v", first)
	}
	exportSpans(t, sink, 2, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	got := sink.Counts().Sub(first)
	if got.Spans != 2 || got.Requests < 1 || got.Bytes <= 0 || got.Rejected != 0 {
		t.Fatalf("after 2 gzipped spans: %+v", got)
	}
}

// Anything but a trace export is refused and counted as refused.
func TestOTLPSinkRefuses(t *testing.T) {
	t.Parallel()
	sink, err := StartOTLPSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	for _, tc := range []struct {
		method, path, ctype, body string
		want                      int
	}{
		{http.MethodGet, "/v1/traces", "", "", http.StatusNotFound},
		{http.MethodPost, "/v1/metrics", "application/x-protobuf", "", http.StatusNotFound},
		{http.MethodPost, "/v1/traces", "application/x-protobuf", "\xff\xff\xff", http.StatusBadRequest},
		{http.MethodPost, "/v1/traces", "text/plain", "spans", http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(tc.method, sink.Endpoint()+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ctype)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s (%s): HTTP %d, want %d", tc.method, tc.path, tc.ctype, resp.StatusCode, tc.want)
		}
	}
	if got := sink.Counts(); got != (OTLPCounts{Rejected: 4}) {
		t.Errorf("counts %+v, want 4 refused and nothing else", got)
	}
}

func TestCountOTLPSpans(t *testing.T) {
	t.Parallel()
	const twoSpans = `{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a"}]},{"spans":[{"name":"b"}]}]},{"scopeSpans":[]}]}`
	for _, tc := range []struct {
		ctype, encoding, body string
		spans                 int
		answer                string
		fails                 bool
	}{
		{"application/json", "", twoSpans, 2, "application/json", false},
		{"application/json; charset=utf-8", "identity", twoSpans, 2, "application/json", false},
		{"application/x-protobuf", "", "", 0, "application/x-protobuf", false}, // an empty export
		{"application/json", "br", twoSpans, 0, "", true},
		{"application/json", "gzip", twoSpans, 0, "", true}, // not gzip
		{"application/xml", "", twoSpans, 0, "", true},
		{"application/json", "", `{"resourceSpans":1}`, 0, "", true},
	} {
		n, answer, err := CountOTLPSpans(tc.ctype, tc.encoding, []byte(tc.body))
		if (err != nil) != tc.fails || n != tc.spans || answer != tc.answer {
			t.Errorf("CountOTLPSpans(%q, %q, %.30q) = %d, %q, %v; want %d, %q, fails %v", tc.ctype, tc.encoding, tc.body, n, answer, err, tc.spans, tc.answer, tc.fails)
		}
	}
}

// FuzzCountOTLPSpans: whatever arrives, the sink's decoder returns a count
// and one of the two content types it answers in, or an error.
func FuzzCountOTLPSpans(f *testing.F) {
	f.Add("application/json", "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a"}]}]}]}`))
	f.Add("application/x-protobuf", "", []byte{0x0a, 0x04, 0x12, 0x02, 0x12, 0x00})
	f.Add("application/x-protobuf", "gzip", []byte{0x1f, 0x8b, 0x08, 0x00})
	f.Fuzz(func(t *testing.T, ctype, encoding string, body []byte) {
		n, answer, err := CountOTLPSpans(ctype, encoding, bytes.Clone(body))
		if err != nil {
			return
		}
		if n < 0 || (answer != "application/json" && answer != "application/x-protobuf") {
			t.Fatalf("CountOTLPSpans(%q, %q, %q) = %d, %q", ctype, encoding, body, n, answer)
		}
	})
}
