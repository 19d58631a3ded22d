package api

import (
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// queueCollector exports asynq's queue statistics under the names of asynq's
// x/metrics collector (which asynqmon's metrics page queries), read through
// an Inspector at scrape time. Unlike x/metrics, one queue that cannot be
// read does not blank the others. (x/metrics is a separate, untagged module
// whose only pullable version needs go-redis v8; this is its ~60 lines.)
type queueCollector struct {
	insp *asynq.Inspector
	log  zerolog.Logger

	tasks, size, latency, memory, processed, failed, paused *prometheus.Desc
}

func newQueueCollector(insp *asynq.Inspector, log zerolog.Logger) *queueCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("asynq", "", name), help, append([]string{"queue"}, labels...), nil)
	}
	return &queueCollector{
		insp:      insp,
		log:       log,
		tasks:     d("tasks_enqueued_total", "Number of tasks in the queue, by state.", "state"),
		size:      d("queue_size", "Number of tasks in the queue (all states)."),
		latency:   d("queue_latency_seconds", "Age of the oldest pending task in the queue."),
		memory:    d("queue_memory_usage_approx_bytes", "Approximate memory used by the queue (sampled)."),
		processed: d("tasks_processed_total", "Tasks processed (succeeded or failed)."),
		failed:    d("tasks_failed_total", "Tasks that failed."),
		paused:    d("queue_paused_total", "1 when the queue is paused."),
	}
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{q.tasks, q.size, q.latency, q.memory, q.processed, q.failed, q.paused} {
		ch <- d
	}
}

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	names, err := q.insp.Queues()
	if err != nil {
		q.log.Warn().Err(err).Msg("queue metrics: list queues")
		return
	}
	for _, name := range names {
		info, err := q.insp.GetQueueInfo(name)
		if err != nil {
			q.log.Warn().Err(err).Str("queue", name).Msg("queue metrics: read queue")
			continue
		}
		g := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
		}
		for state, n := range map[string]int{
			"active": info.Active, "pending": info.Pending, "scheduled": info.Scheduled, "retry": info.Retry,
			"archived": info.Archived, "completed": info.Completed, "aggregating": info.Aggregating,
		} {
			g(q.tasks, float64(n), state)
		}
		g(q.size, float64(info.Size))
		g(q.latency, info.Latency.Seconds())
		g(q.memory, float64(info.MemoryUsage))
		ch <- prometheus.MustNewConstMetric(q.processed, prometheus.CounterValue, float64(info.ProcessedTotal), name)
		ch <- prometheus.MustNewConstMetric(q.failed, prometheus.CounterValue, float64(info.FailedTotal), name)
		p := 0.0
		if info.Paused {
			p = 1
		}
		g(q.paused, p)
	}
}
