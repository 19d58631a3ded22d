// Package otlptest is an in-process OTLP/HTTP trace receiver: tests and
// the bench point OTEL_EXPORTER_OTLP_ENDPOINT at it and read back the spans
// the real exporter sent, over the real wire format (protobuf, gzip or not).
package otlptest

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// maxBody bounds one export request; the SDK's batches are far smaller.
const maxBody = 64 << 20

// Span is a received span, flattened for assertions.
type Span struct {
	Service  string
	TraceID  string
	SpanID   string
	ParentID string // "" for a root
	Name     string
	Kind     string // server, client, producer, consumer, internal
	Start    time.Time
	End      time.Time
	Attrs    map[string]any // string, int64, float64, bool or []any
	Events   []string       // event names
	Links    []Link
	// Status is "", "ok" or "error"; StatusMessage the description.
	Status        string
	StatusMessage string
}

// Link is a span's link to another span.
type Link struct{ TraceID, SpanID string }

// Receiver collects the spans exported to it.
type Receiver struct {
	// URL is the base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT); traces go to
	// URL + "/v1/traces".
	URL string

	srv *httptest.Server

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every export
	spans    []Span
	requests int64
	bytes    int64
}

// Start starts a receiver on a free loopback port.
func Start() *Receiver {
	r := &Receiver{changed: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	return r
}

// Close stops the receiver.
func (r *Receiver) Close() { r.srv.Close() }

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.Error(w, "POST /v1/traces only", http.StatusNotFound)
		return
	}
	var body io.Reader = http.MaxBytesReader(w, req.Body, maxBody)
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = io.LimitReader(zr, maxBody)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		http.Error(w, "not an ExportTraceServiceRequest: "+err.Error(), http.StatusBadRequest)
		return
	}
	got := flatten(&msg)
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.requests++
	r.bytes += req.ContentLength
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()

	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// Spans returns every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Stats returns the export requests, their bytes on the wire and the spans
// received.
func (r *Receiver) Stats() (requests, bytes, spans int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.bytes, int64(len(r.spans))
}

// Wait returns the spans once done says they are all there, or ctx's error
// with what had arrived.
func (r *Receiver) Wait(ctx context.Context, done func([]Span) bool) ([]Span, error) {
	for {
		r.mu.Lock()
		spans, changed := append([]Span(nil), r.spans...), r.changed
		r.mu.Unlock()
		if done(spans) {
			return spans, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return spans, fmt.Errorf("wait for spans (%d received): %w", len(spans), ctx.Err())
		}
	}
}

func flatten(msg *coltrace.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range msg.GetResourceSpans() {
		service, _ := attrMap(rs.GetResource().GetAttributes())["service.name"].(string)
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					Service:  service,
					TraceID:  hex.EncodeToString(s.GetTraceId()),
					SpanID:   hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()),
					Name:     s.GetName(),
					Kind:     kindName(s.GetKind()),
					Start:    time.Unix(0, int64(s.GetStartTimeUnixNano())),
					End:      time.Unix(0, int64(s.GetEndTimeUnixNano())),
					Attrs:    attrMap(s.GetAttributes()),
				}
				for _, e := range s.GetEvents() {
					sp.Events = append(sp.Events, e.GetName())
				}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
				}
				switch s.GetStatus().GetCode() {
				case tracepb.Status_STATUS_CODE_OK:
					sp.Status = "ok"
				case tracepb.Status_STATUS_CODE_ERROR:
					sp.Status = "error"
				}
				sp.StatusMessage = s.GetStatus().GetMessage()
				out = append(out, sp)
			}
		}
	}
	return out
}

func kindName(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	}
	return "internal"
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, value(e))
		}
		return out
	}
	return nil
}

// ByID indexes spans by span id.
func ByID(spans []Span) map[string]Span {
	m := make(map[string]Span, len(spans))
	for _, s := range spans {
		m[s.SpanID] = s
	}
	return m
}
