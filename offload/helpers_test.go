package offload_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/offload"
	"github.com/qaqueue/qaqueue/pricing"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/rs/zerolog"
)

// claimsVersion is the version the tests serve ../worker/testdata/claims
// (a two-stage program) under.
const claimsVersion = "c1a1"

// bundle is one test's Redis, fake provider, LM client, batch store and
// runner.
type bundle struct {
	db       *redistest.DB
	srv      *fakelm.Server
	lc       *lmclient.Client
	api      *lmclient.BatchAPI
	store    *store.Jobs
	bs       *batches.Store
	programs worker.StaticPrograms
	prices   pricing.Table
	reg      *prometheus.Registry
	r        *offload.Runner
}

// setup starts the parts; bcfg shapes the fake provider.
func setup(t *testing.T, cfg offload.Config, bcfg fakelm.BatchConfig) *bundle {
	t.Helper()
	return setupStore(t, cfg, bcfg, store.Config{})
}

// setupStore is setup with the job store's settings (attempts, budget).
func setupStore(t *testing.T, cfg offload.Config, bcfg fakelm.BatchConfig, jcfg store.Config) *bundle {
	t.Helper()
	db := redistest.New(t)
	srv, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if err := srv.SetBatchConfig(bcfg); err != nil {
		t.Fatal(err)
	}
	lc, err := lmclient.New(lmclient.Config{APIBase: srv.URL(), APIKey: "test", Timeout: 10 * time.Second, RedisEnabled: true}, lmclient.Deps{Redis: db.Client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	api, err := lc.BatchAPI()
	if err != nil {
		t.Fatal(err)
	}
	jobStore, err := store.NewJobs(db.Client, jcfg)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batches.NewStore(jobStore, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	qa, err := worker.BuiltinQA(program.NewQA())
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{db: db, srv: srv, lc: lc, api: api, store: jobStore, bs: bs, prices: pricing.Default(),
		programs: worker.StaticPrograms{{Name: jobs.ProgramQA}: qa, {Name: "claims", Version: claimsVersion}: compileClaims(t)}}
	b.reg = prometheus.NewRegistry()
	b.r, err = offload.New(cfg, offload.Deps{Batches: bs, Programs: b.programs, LM: lc, Provider: api, Prices: b.prices,
		Log: zerolog.Nop(), Metrics: offload.NewMetrics(b.reg), Completions: worker.NewMetrics(b.reg)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func compileClaims(t *testing.T) *programfile.Compiled {
	t.Helper()
	bundle, err := programfile.Load(filepath.Join("..", "worker", "testdata", "claims"), "program.yaml", 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	c, err := programfile.Compile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// batchOf stores a provider-mode batch of items running spec's program.
func (b *bundle) batchOf(t *testing.T, spec jobs.Spec, inputs ...jobs.Inputs) *jobs.Batch {
	t.Helper()
	ctx := context.Background()
	u, err := b.bs.BeginUpload(ctx, batches.UploadRequest{Spec: spec, TTL: time.Hour, Mode: jobs.BatchModeProvider})
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range inputs {
		if err := u.Add(ctx, jobs.BatchItem{CustomID: fmt.Sprintf("c%d", i), Inputs: in}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := u.Commit(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return c.Batch
}

// qaBatch is a provider-mode batch of questions to the QA program.
func (b *bundle) qaBatch(t *testing.T, questions ...string) *jobs.Batch {
	t.Helper()
	in := make([]jobs.Inputs, len(questions))
	for i, q := range questions {
		in[i] = jobs.Inputs{"question": q}
	}
	return b.batchOf(t, jobs.Spec{ClientSpec: jobs.ClientSpec{Program: jobs.ProgramQA}, ServerSpec: jobs.ServerSpec{Owner: "alice"}}, in...)
}

// runToEnd runs the runner on batch id until it has no provider work left;
// each run's wait is skipped (the fake provider moves a phase a look).
func (b *bundle) runToEnd(t *testing.T, id string) {
	t.Helper()
	for range 200 {
		wait, err := b.r.Run(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if wait == 0 {
			return
		}
	}
	t.Fatal("the runner never finished")
}

// runUntil runs the runner on batch id until ok reports true of its state.
func (b *bundle) runUntil(t *testing.T, id string, ok func(batches.OffloadState, []batches.OffloadChunk) bool) {
	t.Helper()
	for range 200 {
		st, chunks, err := b.bs.Offload(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(st, chunks) {
			return
		}
		if _, err := b.r.Run(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the state never got there")
}

// results reads batch id's result lines, in index order.
func (b *bundle) results(t *testing.T, bt *jobs.Batch) []jobs.ItemResult {
	t.Helper()
	lines, err := b.bs.Results(context.Background(), bt.ID, 0, bt.Counts.Total)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]jobs.ItemResult, len(lines))
	for i, l := range lines {
		if l == "" {
			continue
		}
		if err := json.Unmarshal([]byte(l), &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func (b *bundle) get(t *testing.T, id string) *jobs.Batch {
	t.Helper()
	bt, err := b.bs.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return bt
}

// live runs spec's program on in through the live path (the worker's
// runner, uncached): what a live batch's item would get.
func (b *bundle) live(t *testing.T, spec jobs.Spec, in jobs.Inputs) *worker.RunResult {
	t.Helper()
	r := worker.NewRunner(b.programs, b.lc)
	res, err := r.Run(context.Background(), in, worker.RunOptions{Options: jobs.Options{NoCache: true},
		Program: spec.Program, ProgramVersion: spec.ProgramVersion})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// cacheOnly is the real LM client answering from its cache alone: what
// the cache holds for a run's requests.
type cacheOnly struct{ *lmclient.Client }

var errNotCached = errors.New("not in the LM cache")

func (c cacheOnly) Complete(ctx context.Context, req *program.Request) (*program.Completion, error) {
	if comp, ok := c.Cached(ctx, req); ok {
		return comp, nil
	}
	return nil, errNotCached
}

// cached reports whether the LM cache answers the QA program's first
// attempt on question q.
func (b *bundle) cached(t *testing.T, q string) bool {
	t.Helper()
	_, err := program.NewQA().Run(context.Background(), cacheOnly{b.lc}, map[string]any{"question": q}, nil)
	if err != nil && !errors.Is(err, errNotCached) {
		t.Fatal(err)
	}
	return err == nil
}

// startWorker runs a worker on the bundle's Redis (live items, and the
// offload task when withOffload) until the test ends.
func (b *bundle) startWorker(t *testing.T, withOffload bool) {
	t.Helper()
	deps := worker.Deps{Redis: b.db.Client, Store: b.store, Runner: worker.NewRunner(b.programs, b.lc), Batches: b.bs, Log: zerolog.Nop()}
	if withOffload {
		deps.Offload = b.r
	}
	w, err := worker.New(worker.Config{ShutdownTimeout: 5 * time.Second}, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
}

// waitEnded waits for batch id to end.
func (b *bundle) waitEnded(t *testing.T, id string) *jobs.Batch {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		bt := b.get(t, id)
		if bt.Status.Terminal() {
			return bt
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("batch %s never ended", id)
	return nil
}

// metric is the value of counter name (qa_offload_…) with label value
// (none: "") as the runner's registry has it; 0 when absent.
func (b *bundle) metric(t *testing.T, name, value string) float64 {
	t.Helper()
	families, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if value == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == value) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
