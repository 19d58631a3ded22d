package main

import (
	"context"
	"time"

	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/telemetry"
	"github.com/rs/zerolog"
)

// traceFlushTimeout bounds the last export at shutdown: a collector that
// is down must not hold the process past its grace period.
const traceFlushTimeout = 5 * time.Second

// startTracing builds the process's tracer provider from the OTEL_*
// variables; its Provider is nil when tracing is off. process is api,
// worker or dev.
func startTracing(ctx context.Context, cfg *config.Config, process string, log zerolog.Logger) (*telemetry.Tracing, error) {
	t := cfg.Telemetry
	tracing, err := telemetry.New(ctx, telemetryConfig(cfg), telemetry.Options{
		Process: process, Version: version,
		OnError: func(err error) { log.Warn().Err(err).Msg("export traces") },
	})
	if err != nil {
		return nil, invalidConfig(err)
	}
	if tracing.Provider() != nil {
		endpoint := t.TracesEndpoint
		if endpoint == "" {
			endpoint = t.Endpoint
		}
		log.Info().Str("endpoint", endpoint).Str("sampler", t.Sampler).Msg("exporting traces (OTLP)")
	}
	return tracing, nil
}

// telemetryConfig maps the OTEL_* variables onto the tracer's settings.
func telemetryConfig(cfg *config.Config) telemetry.Config {
	t := cfg.Telemetry
	return telemetry.Config{
		Disabled: t.Disabled, Exporter: t.Exporter, Endpoint: t.Endpoint, TracesEndpoint: t.TracesEndpoint,
		Protocol: t.Protocol, Headers: t.Headers.Reveal(), Sampler: t.Sampler, SamplerArg: t.SamplerArg,
		ServiceName: t.ServiceName, ResourceAttributes: t.ResourceAttributes,
	}
}

// stopTracing exports what is buffered, after the servers have stopped.
func stopTracing(t *telemetry.Tracing, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("flush traces at shutdown")
	}
}
