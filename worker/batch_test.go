package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Repeated questions in a batch reach the LM once with caching on: later
// repeats hit the LM cache, repeats running side by side share one run.
func TestBatchRepeatedQuestionsReachTheLMOnce(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	lm, err := fakelm.New(fakelm.Config{TTFT: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	lc, err := lmclient.New(lmclient.Config{APIBase: lm.URL(), APIKey: "test", Timeout: 10 * time.Second, MemoryEnabled: true},
		lmclient.Deps{Redis: db.Client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	jobStore, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batches.NewStore(jobStore, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{Concurrency: 2, BatchConcurrency: 8, ShutdownTimeout: 5 * time.Second},
		worker.Deps{Redis: db.Client, Store: jobStore, Runner: worker.NewProgramRunner(program.NewQA(), lc), Batches: bs, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)

	items := make([]jobs.BatchItem, 60)
	for i := range items {
		items[i] = jobs.BatchItem{CustomID: fmt.Sprint(i), Inputs: jobs.Inputs{"question": fmt.Sprintf("What is topic %d?", i%3)}}
	}
	id := createBatch(t, bs, "o", items, false)
	var end *jobs.Batch
	testwait.Until(t, "the batch to end", func() bool {
		b, err := bs.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		end = b
		return b.Status.Terminal()
	})
	if end.Counts.Completed != 60 {
		t.Fatalf("end = %+v", end)
	}
	if n := lm.Requests(); n != 3 {
		t.Fatalf("LM requests = %d, want 3 (one per distinct question)", n)
	}
}

// createBatch stores items as owner's batch, as the API does (BeginUpload,
// Add, Commit), and returns its id.
func createBatch(t *testing.T, bs *batches.Store, owner string, items []jobs.BatchItem, noCache bool) string {
	t.Helper()
	ctx := context.Background()
	spec := jobs.Spec{ClientSpec: jobs.ClientSpec{Program: jobs.ProgramQA, Options: jobs.Options{NoCache: noCache}},
		ServerSpec: jobs.ServerSpec{Owner: owner}}
	u, err := bs.BeginUpload(ctx, batches.UploadRequest{Spec: spec, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := u.Add(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	c, err := u.Commit(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return c.Batch.ID
}

// scripted is a Runner from a function of the inputs' question.
type scripted func(ctx context.Context, q string) (*worker.RunResult, error)

func (f scripted) Run(ctx context.Context, in jobs.Inputs, _ worker.RunOptions) (*worker.RunResult, error) {
	q, _ := in["question"].(string)
	return f(ctx, q)
}
func (scripted) Model() string       { return "fake/model" }
func (scripted) StateSHA256() string { return "0" }

// While two owners have batches running, one owner's items hold at most its
// BATCH_OWNER_SHARE of the batch slots, so a small batch from another owner
// is not queued behind a large one; alone, an owner may use every slot.
func TestBatchOwnerShare(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	jobStore, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batches.NewStore(jobStore, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{}) // closed: A's items take a short while instead
	var mu sync.Mutex
	running := map[byte]int{}
	run := scripted(func(ctx context.Context, q string) (*worker.RunResult, error) {
		mu.Lock()
		running[q[0]]++
		mu.Unlock()
		defer func() { mu.Lock(); running[q[0]]--; mu.Unlock() }()
		if q[0] == 'A' {
			select { // A's items are held, then take 200ms each; B's are instant
			case <-hold:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return &worker.RunResult{Outputs: jobs.Outputs{{Name: "answer", Value: q}}}, nil
	})
	w, err := worker.New(worker.Config{Concurrency: 1, BatchConcurrency: 4, BatchOwnerShare: 0.5, ShutdownTimeout: 5 * time.Second},
		worker.Deps{Redis: db.Client, Store: jobStore, Runner: run, Batches: bs, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	create := func(owner string, n int) string {
		items := make([]jobs.BatchItem, n)
		for i := range items {
			items[i] = jobs.BatchItem{CustomID: fmt.Sprint(i), Inputs: jobs.Inputs{"question": fmt.Sprintf("%s%d", owner, i)}}
		}
		return createBatch(t, bs, owner, items, false)
	}
	aID := create("A", 100)
	// Alone, A takes every slot.
	testwait.Until(t, "A on all four slots", func() bool { mu.Lock(); defer mu.Unlock(); return running['A'] == 4 })
	b := create("B", 10)
	close(hold)
	// With B running, A's items beyond two slots are put back, so B's items
	// are reached and run while most of A's batch is still to come.
	testwait.Until(t, "B's batch to end", func() bool {
		bt, err := bs.Get(context.Background(), b)
		return err == nil && bt.Status.Terminal()
	})
	a, err := bs.Get(context.Background(), aID)
	if err != nil {
		t.Fatal(err)
	}
	if left := a.Counts.Total - a.Counts.Done(); left < 40 {
		t.Fatalf("B ended after A's batch had nearly drained (%d of A's items left): it waited behind A", left)
	}
}

// An upload's expansion is enqueued before its commit makes the batch live.
// If the uploading process dies in between, the expansion waits for the
// commit (without spending its retries or logging errors) and ends quietly
// once the upload's keys are gone.
func TestBatchExpansionWaitsForItsUploadsCommit(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	faulty := redis.NewClient(b.db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	var dead atomic.Bool // the API process died as it sent the accept
	faulty.AddHook(redistest.RefuseScripts{Match: func(_ []string, args []any) bool {
		if len(args) > 0 && args[0] == "accept" {
			dead.Store(true)
		}
		return dead.Load()
	}})
	jobStore, err := store.NewJobs(faulty, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	crashing, err := batches.NewStore(jobStore, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := crashing.BeginUpload(ctx, batches.UploadRequest{Spec: jobs.Spec{ServerSpec: jobs.ServerSpec{Owner: "o"}}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Add(ctx, jobs.BatchItem{CustomID: "a", Inputs: jobs.Inputs{"question": "q?"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(ctx, "", ""); err == nil {
		t.Fatal("commit succeeded through a refused accept")
	}
	var id string
	for _, k := range b.db.Client.Keys(ctx, "qa:batch:batch_*").Val() {
		if s := strings.TrimPrefix(k, "qa:batch:"); !strings.Contains(s, ":") {
			id = s
		}
	}
	b.startWorker(t, worker.Config{})
	insp := asynq.NewInspectorFromRedisClient(b.db.Client)
	testwait.Until(t, "the expansion to wait for the commit", func() bool {
		info, err := insp.GetTaskInfo(jobs.QueueBatchControl, "expand-"+id)
		return err == nil && info.State == asynq.TaskStateRetry && info.Retried == 0 &&
			strings.Contains(info.LastErr, batches.ErrUploading.Error())
	})
	// The upload's keys expire.
	if err := b.db.Client.Del(ctx, jobs.BatchKey(id), jobs.BatchItemsKey(id)).Err(); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "the expansion to end", func() bool {
		_, err := insp.GetTaskInfo(jobs.QueueBatchControl, "expand-"+id)
		return errors.Is(err, asynq.ErrTaskNotFound)
	})
	if logs := b.logs.String(); strings.Contains(logs, `"level":"error"`) || strings.Contains(logs, `"level":"warn"`) {
		t.Fatalf("the wait was logged as a problem:\n%s", logs)
	}
}

// TestBatchLineCountsEveryAttempt: an item whose first attempt called the
// LM and failed reports, as a job does, both attempts and both LM calls in
// its line's provenance.
func TestBatchLineCountsEveryAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.startWorker(t, worker.Config{})
	items := []jobs.BatchItem{{CustomID: "1", Inputs: jobs.Inputs{"question": "flaky item [[fakelm:500,times=1]]"}}}
	id := createBatch(t, b.batches, "o", items, false)
	if bt := b.waitBatch(t, id); bt.Counts.Completed != 1 {
		t.Fatalf("batch = %s %+v", bt.Status, bt.Counts)
	}
	lines, err := b.batches.Results(context.Background(), id, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	var r jobs.ItemResult
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatal(err)
	}
	want := &jobs.Provenance{Model: b.runner.Model(), StateSHA256: b.runner.StateSHA256(), Attempts: 2, LMCalls: 2, Program: jobs.ProgramQA}
	if r.Attempts != 2 || r.Provenance == nil || *r.Provenance != *want {
		t.Fatalf("line = %s; want 2 attempts and provenance %+v", lines[0], want)
	}
}
