package worker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/pricing"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/rs/zerolog"
)

// startPricedWorker runs a worker of runner with prices and its metrics on
// reg.
func (b *bundle) startPricedWorker(t *testing.T, runner worker.Runner, prices pricing.Table, reg *prometheus.Registry) {
	t.Helper()
	w, err := worker.New(worker.Config{ShutdownTimeout: 5 * time.Second}, worker.Deps{Redis: b.db.Client, Store: b.store,
		Runner: runner, Batches: b.batches, Log: zerolog.New(b.logs), Metrics: worker.NewMetrics(reg), Prices: prices})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
}

// TestJobCost: a completed job records what its LM call cost at the
// model's live price, and a cache hit costs 0; both count in the hour's
// usage accounting and in the usage metrics, whose labels are the key's
// name and the program alone.
func TestJobCost(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	// The LM's answers cached in memory: the same question twice is a
	// cache hit.
	lc, err := lmclient.New(lmclient.Config{APIBase: b.lm.URL(), APIKey: "test", Timeout: 10 * time.Second, MemoryEnabled: true},
		lmclient.Deps{Redis: b.db.Client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	reg := prometheus.NewRegistry()
	b.startPricedWorker(t, worker.NewProgramRunner(program.NewQA(), lc), pricing.Default(), reg)
	ctx := context.Background()

	first := b.waitEnd(t, b.submit(t, ask("Why is the sky blue?", "alice", jobs.Options{})))
	if first.Status != jobs.StatusCompleted || first.Result.Provenance.CacheHit {
		t.Fatalf("first job: %s, cache hit %v; want completed by the LM", first.Status, first.Result.Provenance.CacheHit)
	}
	byModel, err := pricing.ParseUsage(first.Result.Usage)
	if err != nil || len(byModel) == 0 {
		t.Fatalf("first job's usage %s: %v", first.Result.Usage, err)
	}
	want := pricing.Default().CostOfModels(byModel, false)
	if got := first.Result.Cost; got == nil || *got != *want || *got <= 0 {
		t.Fatalf("first job's cost %v, want %d micro-dollars (its usage %s at the live price)", got, *want, first.Result.Usage)
	}
	again := b.waitEnd(t, b.submit(t, ask("Why is the sky blue?", "alice", jobs.Options{})))
	if !again.Result.Provenance.CacheHit || again.Result.Cost == nil || *again.Result.Cost != 0 {
		t.Fatalf("the same question again: cache hit %v, cost %v; want a cache hit at 0", again.Result.Provenance.CacheHit, again.Result.Cost)
	}

	tokens := pricing.Tokens(byModel)
	now := time.Now()
	rows, err := store.ReadUsage(ctx, b.db.Client, now.Add(-time.Hour), now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	wantRows := []store.UsageRow{{Key: "alice", Program: jobs.ProgramQA, Model: first.Result.Provenance.Model,
		UsageCounts: store.UsageCounts{Jobs: 2, CacheHits: 1, InputTokens: tokens.Input, CachedInputTokens: tokens.CachedInput,
			OutputTokens: tokens.Output, CostMicroUSD: *want}}}
	if diff := cmp.Diff(wantRows, rows); diff != "" {
		t.Errorf("usage accounting (-want +got):\n%s", diff)
	}

	// The second (cached) job is counted last; its cost, 0, goes with it.
	waitValue(t, reg, "qa_jobs_completed_total", "alice", 2)
	if got := value(t, reg, "qa_jobs_completed_total", "alice"); got != 2 {
		t.Errorf("qa_jobs_completed_total{key=alice} = %v, want 2", got)
	}
	if got := value(t, reg, "qa_job_cost_usd_total", "alice"); got != float64(*want)/1e6 {
		t.Errorf("qa_job_cost_usd_total{key=alice} = %v, want %v", got, float64(*want)/1e6)
	}
	checkUsageLabels(t, reg)
}

// TestUnpricedJob: a job of a model the price table does not know records
// a null cost, and counts as unpriced.
func TestUnpricedJob(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	reg := prometheus.NewRegistry()
	b.startPricedWorker(t, b.runner, pricing.Table{}, reg)
	j := b.waitEnd(t, b.submit(t, ask("Why is the grass green?", "bob", jobs.Options{})))
	if j.Status != jobs.StatusCompleted || j.Result.Cost != nil {
		t.Fatalf("job: %s, cost %v; want completed at an unknown (null) cost", j.Status, j.Result.Cost)
	}
	now := time.Now()
	rows, err := store.ReadUsage(context.Background(), b.db.Client, now.Add(-time.Hour), now.Add(time.Hour), "bob")
	if err != nil || len(rows) != 1 || rows[0].UnpricedJobs != 1 || rows[0].CostMicroUSD != 0 || rows[0].InputTokens == 0 {
		t.Errorf("bob's usage %+v, %v; want one unpriced job with its tokens", rows, err)
	}
	waitValue(t, reg, "qa_jobs_unpriced_total", "bob", 1)
	if got := value(t, reg, "qa_jobs_unpriced_total", "bob"); got != 1 {
		t.Errorf("qa_jobs_unpriced_total{key=bob} = %v, want 1", got)
	}
	checkUsageLabels(t, reg)
}

// value is metric name's value for key and the qa program (summed over
// kinds).
func value(t *testing.T, reg *prometheus.Registry, name, key string) float64 {
	t.Helper()
	sum, found := sumOf(t, reg, name, key)
	if !found {
		t.Errorf("no %s{key=%q,program=qa}", name, key)
	}
	return sum
}

// waitValue waits for metric name of key to reach want: the worker counts
// a completion after recording it, so a client can see the job ended a
// moment before its metrics move.
func waitValue(t *testing.T, reg *prometheus.Registry, name, key string, want float64) {
	t.Helper()
	testwait.Until(t, fmt.Sprintf("%s{key=%q} to reach %v", name, key, want), func() bool {
		got, _ := sumOf(t, reg, name, key)
		return got >= want
	})
}

func sumOf(t *testing.T, reg *prometheus.Registry, name, key string) (sum float64, found bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["key"] == key && labels["program"] == jobs.ProgramQA {
				sum += m.GetCounter().GetValue()
				found = true
			}
		}
	}
	return sum, found
}

// checkUsageLabels: the usage metrics are labelled by key name and program
// (and the token kind) only, never by version, id or model.
func checkUsageLabels(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	want := map[string][]string{
		"qa_job_tokens_total":     {"key", "kind", "program"},
		"qa_job_cost_usd_total":   {"key", "program"},
		"qa_jobs_completed_total": {"key", "program"},
		"qa_jobs_unpriced_total":  {"key", "program"},
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		names, ok := want[f.GetName()]
		if !ok {
			continue
		}
		for _, m := range f.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName())
				if l.GetName() == "kind" && !slices.Contains([]string{"input", "cached_input", "output"}, l.GetValue()) {
					t.Errorf("%s: kind %q", f.GetName(), l.GetValue())
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, names) {
				t.Errorf("%s labels %v, want %v", f.GetName(), got, names)
			}
		}
	}
}

// TestStagedJobCost: a multi-stage job records each stage's cost, and
// their sum as its own.
func TestStagedJobCost(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.serveClaims(t)
	b.startPricedWorker(t, b.runner, pricing.Default(), prometheus.NewRegistry())
	j := b.waitCompleted(t, b.submit(t, claimsJob("plain")))
	r := j.Result
	if len(r.Stages) != 2 || r.Cost == nil {
		t.Fatalf("result: %d stages, cost %v; want 2 stages and a cost", len(r.Stages), r.Cost)
	}
	var sum int64
	for _, st := range r.Stages {
		u, err := pricing.ParseUsage(st.Usage)
		if err != nil {
			t.Fatal(err)
		}
		want := pricing.Default().CostOfModels(u, false)
		if st.Cost == nil || *st.Cost != *want || *st.Cost <= 0 {
			t.Errorf("stage %s: cost %v, want %d (its usage %s)", st.Stage, st.Cost, *want, st.Usage)
			continue
		}
		sum += *st.Cost
	}
	if *r.Cost != sum {
		t.Errorf("job's cost %d, want its stages' sum %d", *r.Cost, sum)
	}
}

// TestCostWithoutUsage: with TRACK_USAGE=false the result's usage is null,
// but its cost and the usage accounting's tokens are still there.
func TestCostWithoutUsage(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	w, err := worker.New(worker.Config{ShutdownTimeout: 5 * time.Second, DisableUsage: true}, worker.Deps{Redis: b.db.Client,
		Store: b.store, Runner: b.runner, Log: zerolog.New(b.logs), Prices: pricing.Default()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	j := b.waitCompleted(t, b.submit(t, ask("Why is the sea salty?", "carol", jobs.Options{})))
	if string(j.Result.Usage) != "null" || j.Result.Cost == nil || *j.Result.Cost <= 0 {
		t.Fatalf("usage %s, cost %v; want null usage and a cost", j.Result.Usage, j.Result.Cost)
	}
	now := time.Now()
	rows, err := store.ReadUsage(context.Background(), b.db.Client, now.Add(-time.Hour), now.Add(time.Hour), "carol")
	if err != nil || len(rows) != 1 || rows[0].InputTokens <= 0 || rows[0].OutputTokens <= 0 || rows[0].CostMicroUSD != *j.Result.Cost {
		t.Errorf("carol's usage %+v, %v; want her job's tokens and its cost %d", rows, err, *j.Result.Cost)
	}
}
