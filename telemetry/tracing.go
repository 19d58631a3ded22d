package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config is the standard OpenTelemetry environment, as the config package
// reads it (each field names its variable). The exporter's other variables
// (certificates, timeout, compression) and the batch processor's
// (OTEL_BSP_*) are read by the SDK itself.
type Config struct {
	// Disabled turns tracing off whatever else is set. OTEL_SDK_DISABLED.
	Disabled bool
	// Exporter is "otlp" or "none"; empty means otlp when an endpoint is
	// set, else none. OTEL_TRACES_EXPORTER.
	Exporter string
	// Endpoint is the collector's base URL (traces go to /v1/traces over
	// HTTP). OTEL_EXPORTER_OTLP_ENDPOINT.
	Endpoint string
	// TracesEndpoint is the full URL for traces, winning over Endpoint.
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.
	TracesEndpoint string
	// Protocol is "http/protobuf" (empty: the default) or "grpc".
	// OTEL_EXPORTER_OTLP_PROTOCOL.
	Protocol string
	// Headers are sent with every export, "k=v,k2=v2" with URL-encoded
	// values. OTEL_EXPORTER_OTLP_HEADERS.
	Headers string
	// Sampler and SamplerArg choose which traces are kept:
	// always_on, always_off, traceidratio, parentbased_always_on (the
	// default), parentbased_always_off, parentbased_traceidratio; the arg
	// is the ratio. OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG.
	Sampler    string
	SamplerArg string
	// ServiceName names every process's spans (default qaqueue-<process>).
	// OTEL_SERVICE_NAME.
	ServiceName string
	// ResourceAttributes are added to every span's resource, "k=v,…".
	// OTEL_RESOURCE_ATTRIBUTES.
	ResourceAttributes string
}

// Enabled reports whether c exports traces.
func (c Config) Enabled() bool {
	if c.Disabled || c.Exporter == "none" {
		return false
	}
	return c.Exporter == "otlp" || c.Endpoint != "" || c.TracesEndpoint != ""
}

// Tracing is a process's tracer provider: nil-safe, and nil inside when
// tracing is off.
type Tracing struct {
	tp *sdktrace.TracerProvider
}

// Options are what New needs besides Config.
type Options struct {
	// Process names the process kind (api, worker, dev), the default
	// service name's suffix.
	Process string
	// Version is the build's version (service.version).
	Version string
	// OnError hears export failures (the SDK retries on its own); nil
	// leaves the SDK's default, which logs to stderr.
	OnError func(error)
}

// New builds the tracer provider c asks for. With tracing off it returns a
// Tracing whose Provider is nil, having built nothing. A bad value is an
// error naming its variable.
func New(ctx context.Context, c Config, o Options) (*Tracing, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return &Tracing{}, nil
	}
	sampler, err := c.sampler()
	if err != nil {
		return nil, err
	}
	exp, err := c.exporter(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.resource(o)
	if err != nil {
		return nil, err
	}
	if o.OnError != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(o.OnError))
	}
	return &Tracing{tp: sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(res),
	)}, nil
}

// Validate returns every bad value, each naming its variable. Values are
// checked with tracing off too, so a typo shows before the day tracing is
// turned on.
func (c Config) Validate() error {
	var errs []error
	if c.Exporter != "" && c.Exporter != "otlp" && c.Exporter != "none" {
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: qaqueue exports traces over OTLP only (otlp or none)", c.Exporter))
	}
	if _, err := c.sampler(); err != nil {
		errs = append(errs, err)
	}
	if c.Protocol != "" && c.Protocol != "http/protobuf" && c.Protocol != "grpc" {
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: use http/protobuf or grpc (http/json is not supported)", c.Protocol))
	}
	for _, e := range []struct{ name, url string }{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", c.Endpoint}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", c.TracesEndpoint},
	} {
		if e.url != "" {
			if err := checkURL(e.name, e.url); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := parsePairs("OTEL_EXPORTER_OTLP_HEADERS", c.Headers); err != nil {
		errs = append(errs, err)
	}
	if _, err := parsePairs("OTEL_RESOURCE_ATTRIBUTES", c.ResourceAttributes); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Provider is the tracer provider to pass to the API, the worker and the
// LM client; nil when tracing is off, which they take as "trace nothing".
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil || t.tp == nil {
		return nil // an untyped nil: a nil *TracerProvider would not compare equal
	}
	return t.tp
}

// Shutdown exports what is buffered and stops; a no-op when tracing is off.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.tp == nil {
		return nil
	}
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// OrNoop is tp, or a provider that records nothing when tp is nil.
func OrNoop(tp trace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return noop.NewTracerProvider()
	}
	return tp
}

// exporter builds the OTLP exporter of a validated c.
func (c Config) exporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	headers, err := parsePairs("OTEL_EXPORTER_OTLP_HEADERS", c.Headers)
	if err != nil {
		return nil, err
	}
	switch c.Protocol {
	case "", "http/protobuf":
		opts := []otlptracehttp.Option{otlptracehttp.WithHeaders(headers)}
		switch {
		case c.TracesEndpoint != "":
			opts = append(opts, otlptracehttp.WithEndpointURL(c.TracesEndpoint))
		case c.Endpoint != "":
			// The base endpoint gets the signal's path, as the spec says.
			opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(c.Endpoint, "/")+"/v1/traces"))
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("start the OTLP/HTTP trace exporter: %w", err)
		}
		return exp, nil
	case "grpc":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithHeaders(headers)}
		if u := cmp.Or(c.TracesEndpoint, c.Endpoint); u != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(u))
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("start the OTLP/gRPC trace exporter: %w", err)
		}
		return exp, nil
	}
	return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: not supported", c.Protocol) // Validate said so already
}

func checkURL(name, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s=%q: want an http:// or https:// URL", name, v)
	}
	return nil
}

func (c Config) sampler() (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		if c.SamplerArg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(c.SamplerArg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio between 0 and 1", c.SamplerArg)
		}
		return r, nil
	}
	switch c.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		r, err := ratio()
		return sdktrace.TraceIDRatioBased(r), err
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		r, err := ratio()
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), err
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", c.Sampler)
}

func (c Config) resource(o Options) (*resource.Resource, error) {
	pairs, err := parsePairs("OTEL_RESOURCE_ATTRIBUTES", c.ResourceAttributes)
	if err != nil {
		return nil, err
	}
	attrs := make([]attribute.KeyValue, 0, len(pairs)+2)
	for k, v := range pairs {
		attrs = append(attrs, attribute.String(k, v))
	}
	name := c.ServiceName
	if name == "" {
		name = "qaqueue-" + o.Process
	}
	// Ours last: OTEL_SERVICE_NAME wins over a service.name in the list, as
	// the spec says.
	attrs = append(attrs, attribute.String("service.name", name), attribute.String("service.version", o.Version))
	return resource.NewSchemaless(attrs...), nil
}

// parsePairs reads "k=v,k2=v2" with URL-encoded values (the W3C baggage
// form the OTEL_* lists use).
func parsePairs(name, s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: %q is not key=value", name, strings.TrimSpace(item))
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s: the value of %s: %w", name, k, err)
		}
		out[k] = dv
	}
	return out, nil
}
