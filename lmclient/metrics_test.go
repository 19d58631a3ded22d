package lmclient

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestMetricsShareARegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := setup(t, withMemory, func(_ *Config, d *Deps) { d.Registerer = reg })
	other := newClient(t, b.cfg, Deps{Registerer: reg}) // a second client must not panic
	completeAccept(t, b.c, chatRequest("metrics?"))
	if _, err := b.c.Complete(ctxT(t), chatRequest("metrics?")); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Complete(ctxT(t), chatRequest("metrics, other")); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, b.c.metrics.calls.WithLabelValues("ok")); got != 2 {
		t.Errorf("ok calls = %v, want 2 (both clients, one registry)", got)
	}
	if got := counter(t, b.c.metrics.cacheHits.WithLabelValues("memory")); got != 1 {
		t.Errorf("memory hits = %v", got)
	}
	if got := counter(t, b.c.metrics.tokens.WithLabelValues("prompt")); got <= 0 {
		t.Errorf("prompt tokens = %v", got)
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
