package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	outcomes  *prometheus.CounterVec
	runs      *prometheus.HistogramVec
	recovered *prometheus.CounterVec

	// stages is qa_worker_stage_seconds{program,stage}.
	stages *prometheus.HistogramVec
}

// NewMetrics registers the worker's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qa", Subsystem: "worker", Name: "job_attempts_total",
			Help: "Job attempts by queue and outcome (completed, failed, retried, deferred, cancelled, requeued, dropped).",
		}, []string{"queue", "outcome"}),
		runs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "qa", Subsystem: "worker", Name: "job_run_seconds",
			Help:    "Duration of successful job attempts, program run included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"queue"}),
		recovered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qa", Subsystem: "worker", Name: "recovered_jobs_total",
			Help: "Jobs and batch items (kind) this worker's recoverer put back to run again because the worker running them was lost.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.outcomes, m.runs, m.recovered)
	m.stages = newStageSeconds(reg)
	return m
}

// newStageSeconds registers the stage latency histogram: by program name
// and stage key only (a version label would grow with every push).
func newStageSeconds(reg prometheus.Registerer) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "qa", Subsystem: "worker", Name: "stage_seconds",
		Help:    "Duration of program stages that ran to an answer, LM calls included, by program and stage (a single-stage program's stage is its predictor).",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	}, []string{"program", "stage"})
	reg.MustRegister(h)
	return h
}

// observeStage records a stage's run; a nil *Metrics records nothing.
func (m *Metrics) observeStage(program, stage string, d time.Duration) {
	if m != nil {
		m.stages.WithLabelValues(program, stage).Observe(d.Seconds())
	}
}

func (m *Metrics) observeOutcome(queue, outcome string) {
	if m != nil {
		m.outcomes.WithLabelValues(queue, outcome).Inc()
	}
}

func (m *Metrics) observeRun(queue string, d time.Duration) {
	if m != nil {
		m.runs.WithLabelValues(queue).Observe(d.Seconds())
	}
}

func (m *Metrics) observeRecovered(kind string, n int) {
	if m != nil && n > 0 {
		m.recovered.WithLabelValues(kind).Add(float64(n))
	}
}
