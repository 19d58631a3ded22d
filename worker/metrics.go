package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/qaqueue/qaqueue/jobs"
)

// Metrics are the worker's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	outcomes  *prometheus.CounterVec
	runs      *prometheus.HistogramVec
	recovered *prometheus.CounterVec
	usage     usageMetrics

	// stages is qa_worker_stage_seconds{program,stage}.
	stages *prometheus.HistogramVec
}

// usageMetrics are what completed jobs and batch items used, by API key
// name and program only: never by version, id or model, so the series stay
// as few as the keys and programs (a push makes a new version). GET
// /v1/usage has the finer breakdown.
type usageMetrics struct {
	tokens, cost, completed, unpriced *prometheus.CounterVec
}

// Token kinds of qa_job_tokens_total.
const (
	tokensInput       = "input"
	tokensCachedInput = "cached_input"
	tokensOutput      = "output"
)

func newUsageMetrics() usageMetrics {
	return usageMetrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qa", Name: "job_tokens_total",
			Help: "LM tokens of completed jobs and batch items, by API key name, program and kind (input: every prompt token; cached_input: those of them the provider's prompt cache served; output).",
		}, []string{"key", "program", "kind"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qa", Name: "job_cost_usd_total",
			Help: "Cost in USD of completed jobs and batch items at the price table's prices (LM_PRICES), by API key name and program; an unpriced one adds nothing (qa_jobs_unpriced_total counts it).",
		}, []string{"key", "program"}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qa", Name: "jobs_completed_total",
			Help: "Completed jobs and batch items, by API key name and program.",
		}, []string{"key", "program"}),
		unpriced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "qa", Name: "jobs_unpriced_total",
			Help: "Completed jobs and batch items whose model has no price (their cost is unknown), by API key name and program.",
		}, []string{"key", "program"}),
	}
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
		usage: newUsageMetrics(),
	}
	reg.MustRegister(m.outcomes, m.runs, m.recovered, m.usage.tokens, m.usage.cost, m.usage.completed, m.usage.unpriced)
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

// ObserveCompletion counts a completed job or batch item of key (the API
// key's name), as recorded: r's tokens, cost and program. The offload
// runner reports its provider-path items through it too.
func (m *Metrics) ObserveCompletion(key string, r *jobs.Result) {
	if m == nil {
		return
	}
	u, program := &m.usage, r.Provenance.Program
	u.completed.WithLabelValues(key, program).Inc()
	for _, k := range [...]struct {
		kind string
		n    int64
	}{{tokensInput, r.Tokens.Input}, {tokensCachedInput, r.Tokens.CachedInput}, {tokensOutput, r.Tokens.Output}} {
		if k.n > 0 {
			u.tokens.WithLabelValues(key, program, k.kind).Add(float64(k.n))
		}
	}
	if r.Cost == nil {
		u.unpriced.WithLabelValues(key, program).Inc()
		return
	}
	u.cost.WithLabelValues(key, program).Add(float64(*r.Cost) / 1e6)
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
