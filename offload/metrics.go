package offload

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the runner's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	rounds   prometheus.Counter
	requests *prometheus.CounterVec
	polls    *prometheus.CounterVec
}

// NewMetrics registers the runner's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rounds: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "qa", Subsystem: "offload", Name: "rounds_total",
			Help: "Provider rounds started (one per program stage, more for parse fallbacks sent back to the provider).",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qa", Subsystem: "offload", Name: "requests_total",
			Help: "Provider-mode items' stages by outcome: provider (answered by the provider batch), live (by a live fallback), " +
				"cache (by the LM cache, never sent), deferred (to a further round), handed_live (to the live path), failed, malformed (a line not read).",
		}, []string{"outcome"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qa", Subsystem: "offload", Name: "polls_total",
			Help: "Looks at a round's provider batches, by what they found (finished, unfinished, error).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.rounds, m.requests, m.polls)
	return m
}

func (m *Metrics) round() {
	if m != nil {
		m.rounds.Inc()
	}
}

func (m *Metrics) request(outcome string, n int) {
	if m != nil && n > 0 {
		m.requests.WithLabelValues(outcome).Add(float64(n))
	}
}

func (m *Metrics) poll(result string) {
	if m != nil {
		m.polls.WithLabelValues(result).Inc()
	}
}
