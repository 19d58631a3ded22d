package benchkit

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// maxOTLPBody caps one export's body, decompressed: the SDK's batches are
// at most 512 spans, far below it.
const maxOTLPBody = 64 << 20

// OTLPSink is an OTLP/HTTP trace receiver on loopback for the bench's
// processes (OTEL_EXPORTER_OTLP_ENDPOINT=Endpoint()): it takes POST
// /v1/traces, counts the exports, their bytes as sent and their spans,
// and answers 200 with an empty ExportTraceServiceResponse, as a collector
// that keeps everything would. A body it cannot read is answered 400 and
// counted as such.
type OTLPSink struct {
	ln  net.Listener
	srv *http.Server

	requests, bytes, spans, rejected atomic.Int64
}

// OTLPCounts are what a sink has received since it started.
type OTLPCounts struct {
	// Requests are the exports answered 200; Bytes their bodies as sent
	// (compressed when the exporter compresses); Spans the spans in them.
	Requests, Bytes, Spans int64
	// Rejected are the requests answered 400 (a body not an
	// ExportTraceServiceRequest) or 404 (another path or method).
	Rejected int64
}

// Sub is c − before.
func (c OTLPCounts) Sub(before OTLPCounts) OTLPCounts {
	return OTLPCounts{c.Requests - before.Requests, c.Bytes - before.Bytes, c.Spans - before.Spans, c.Rejected - before.Rejected}
}

// StartOTLPSink serves a sink on a free loopback port.
func StartOTLPSink() (*OTLPSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("otlp sink: listen: %w", err)
	}
	s := &OTLPSink{ln: ln}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }() // returns ErrServerClosed on Close
	return s, nil
}

// Endpoint is the sink's base URL, for OTEL_EXPORTER_OTLP_ENDPOINT (the
// exporter appends /v1/traces).
func (s *OTLPSink) Endpoint() string { return "http://" + s.ln.Addr().String() }

// Counts is what the sink has received so far.
func (s *OTLPSink) Counts() OTLPCounts {
	return OTLPCounts{s.requests.Load(), s.bytes.Load(), s.spans.Load(), s.rejected.Load()}
}

// Close stops the sink.
func (s *OTLPSink) Close() error { return s.srv.Close() }

// ServeHTTP answers one export.
func (s *OTLPSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		s.rejected.Add(1)
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxOTLPBody+1))
	if err != nil {
		s.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n, ct, err := CountOTLPSpans(r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), body)
	if err != nil {
		s.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.requests.Add(1)
	s.bytes.Add(int64(len(body)))
	s.spans.Add(int64(n))
	out, err := encodeOTLP(ct, &coltracepb.ExportTraceServiceResponse{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(out)
}

// CountOTLPSpans decodes an OTLP/HTTP trace export's body (protobuf or
// JSON, by contentType; gzip when encoding says so) and returns its span
// count and the content type to answer in.
func CountOTLPSpans(contentType, encoding string, body []byte) (spans int, answerAs string, err error) {
	switch encoding {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return 0, "", fmt.Errorf("otlp: gunzip: %w", err)
		}
		if body, err = io.ReadAll(io.LimitReader(zr, maxOTLPBody+1)); err != nil {
			return 0, "", fmt.Errorf("otlp: gunzip: %w", err)
		}
	default:
		return 0, "", fmt.Errorf("otlp: Content-Encoding %q", encoding)
	}
	if len(body) > maxOTLPBody {
		return 0, "", errors.New("otlp: body over 64 MiB")
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	var req coltracepb.ExportTraceServiceRequest
	switch mt {
	case "application/x-protobuf":
		err = proto.Unmarshal(body, &req)
	case "application/json":
		err = protojson.Unmarshal(body, &req)
	default:
		return 0, "", fmt.Errorf("otlp: Content-Type %q", contentType)
	}
	if err != nil {
		return 0, "", fmt.Errorf("otlp: decode the export: %w", err)
	}
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			spans += len(ss.GetSpans())
		}
	}
	return spans, mt, nil
}

func encodeOTLP(contentType string, m proto.Message) ([]byte, error) {
	if contentType == "application/json" {
		return protojson.Marshal(m)
	}
	return proto.Marshal(m)
}
