package lmclient

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus collectors. Several clients may share
// one registry: a collector already registered is reused.
type metrics struct {
	calls       *prometheus.CounterVec   // status
	tokens      *prometheus.CounterVec   // kind: prompt, completion
	cacheHits   *prometheus.CounterVec   // layer
	cacheMisses prometheus.Counter       //
	waits       prometheus.Histogram     // limiter waits that ended in a call
	deferred    *prometheus.CounterVec   // reason: rate_limit, cooldown
	duration    *prometheus.HistogramVec // stream: true/false
	batchCalls  *prometheus.CounterVec   // op, outcome: provider batch API calls

	// The children every call touches, looked up once.
	callsOK, promptTokens, completionTokens prometheus.Counter
	durationJSON, durationStream            prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qa_lm_calls_total", Help: "LM calls made, by outcome.",
		}, []string{"status"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qa_lm_tokens_total", Help: "Tokens reported by the provider, by kind.",
		}, []string{"kind"}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qa_lm_cache_hits_total", Help: "LM cache hits, by layer.",
		}, []string{"layer"}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qa_lm_cache_misses_total", Help: "LM cache lookups that found nothing.",
		}),
		waits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "qa_lm_limiter_wait_seconds", Help: "Time calls waited for the shared LM rate limit.",
			Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qa_lm_limiter_deferred_total", Help: "Calls refused because the wait exceeded MaxWait, by reason.",
		}, []string{"reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "qa_lm_call_duration_seconds", Help: "LM call duration, provider calls only.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}, []string{"stream"}),
		batchCalls: newBatchMetrics(nil),
	}
	if reg != nil {
		m.calls = register(reg, m.calls)
		m.tokens = register(reg, m.tokens)
		m.cacheHits = register(reg, m.cacheHits)
		m.cacheMisses = register(reg, m.cacheMisses)
		m.waits = register(reg, m.waits)
		m.deferred = register(reg, m.deferred)
		m.duration = register(reg, m.duration)
		m.batchCalls = register(reg, m.batchCalls)
	}
	m.callsOK = m.calls.WithLabelValues("ok")
	m.promptTokens = m.tokens.WithLabelValues("prompt")
	m.completionTokens = m.tokens.WithLabelValues("completion")
	m.durationJSON = m.duration.WithLabelValues("false")
	m.durationStream = m.duration.WithLabelValues("true")
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// newBatchMetrics is the counter of provider batch API calls (BatchAPI),
// registered with reg when it is set.
func newBatchMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qa_lm_batch_api_calls_total", Help: "Provider batch API calls (files and batches), by operation and outcome.",
	}, []string{"op", "outcome"})
	if reg != nil {
		c = register(reg, c)
	}
	return c
}
