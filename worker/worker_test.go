package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testlog"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

type bundle struct {
	db      *redistest.DB
	lm      *fakelm.Server
	lc      *lmclient.Client // the runner's LM, on lm
	store   *store.Jobs
	client  *store.Client
	batches *batches.Store
	runner  *worker.ProgramRunner
	hub     *store.Hub      // what waitEnd follows a job's end through
	logs    *testlog.Buffer // what the workers log
	// tracing, metrics and offload are the started workers' (nil: none;
	// see tracing_test.go).
	tracing trace.TracerProvider
	metrics *worker.Metrics
	offload worker.Offloader
}

func setup(t *testing.T, jcfg store.Config) *bundle {
	t.Helper()
	db := redistest.New(t)
	lm, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	lc, err := lmclient.New(lmclient.Config{APIBase: lm.URL(), APIKey: "test", Timeout: 10 * time.Second}, lmclient.Deps{Redis: db.Client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	jobStore, err := store.NewJobs(db.Client, jcfg)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batches.NewStore(jobStore, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{db: db, lm: lm, lc: lc, store: jobStore, client: store.NewClient(db.Client, jobStore), batches: bs,
		runner: worker.NewProgramRunner(program.NewQA(), lc), logs: &testlog.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	b.hub = store.NewHub(ctx, db.Client, zerolog.Nop())
	hubDone := make(chan struct{})
	go func() { b.hub.Run(ctx); close(hubDone) }()
	t.Cleanup(func() { _ = b.hub.Close(); cancel(); <-hubDone })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", b.logs.String())
		}
	})
	return b
}

// startWorker runs a worker until the test ends (or stop is called).
func (b *bundle) startWorker(t *testing.T, cfg worker.Config) (stop func()) {
	t.Helper()
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	w, err := worker.New(cfg, worker.Deps{Redis: b.db.Client, Store: b.store, Runner: b.runner, Batches: b.batches, Log: zerolog.New(b.logs),
		Tracing: b.tracing, Metrics: b.metrics, Offload: b.offload})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return w.Shutdown
}

// ask is the request of owner's question q with opts, on the interactive
// queue.
func ask(q, owner string, opts jobs.Options) store.SubmitRequest {
	s := jobs.Spec{ClientSpec: jobs.QuestionSpec(q), ServerSpec: jobs.ServerSpec{Owner: owner}}
	s.Options = opts
	return store.SubmitRequest{Spec: s}
}

// onQueue is req on queue.
func onQueue(queue string, req store.SubmitRequest) store.SubmitRequest {
	req.Spec.Queue = queue
	return req
}

func (b *bundle) submit(t *testing.T, req store.SubmitRequest) string {
	t.Helper()
	s, err := b.client.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return s.Job.ID
}

// waitEnd waits for job id to end, for up to testwait.Patience.
func (b *bundle) waitEnd(t *testing.T, id string) *jobs.Job {
	t.Helper()
	return b.waitEndWithin(t, id, testwait.Patience)
}

// waitEndWithin waits for job id to end through the store's own wait (its
// events on the hub, not a polling loop), failing the test if it has not
// ended after deadline: a hang guard, not a timing assertion.
func (b *bundle) waitEndWithin(t *testing.T, id string, deadline time.Duration) *jobs.Job {
	t.Helper()
	j, err := b.store.Wait(context.Background(), b.hub, id, deadline)
	if err != nil {
		t.Fatalf("wait for job %s: %v", id, err)
	}
	if !j.Status.Terminal() {
		t.Fatalf("gave up waiting for job %s to end after %v: %s", id, deadline, j.Status)
	}
	return j
}

func (b *bundle) events(t *testing.T, id string) []jobs.Event {
	t.Helper()
	evs, err := b.store.Events(context.Background(), id, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func types(evs []jobs.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, string(e.Type))
	}
	return strings.Join(s, " ")
}

// answerTokens concatenates the token events of field after the last reset.
func answerTokens(t *testing.T, evs []jobs.Event, field string) string {
	t.Helper()
	var b strings.Builder
	for _, e := range evs {
		switch e.Type {
		case jobs.EventRetrying, jobs.EventStarted:
			b.Reset()
		case jobs.EventToken:
			var d jobs.TokenData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			if d.Field == field {
				b.WriteString(d.Content)
			}
		}
	}
	return b.String()
}

func count(evs []jobs.Event, typ jobs.EventType) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// TestJobRunsAndStreams: a worker of the zero Config streams, as
// ENABLE_STREAMING's default says.
func TestJobRunsAndStreams(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.lm.SetTokensPerSecond(2000)
	b.startWorker(t, worker.Config{})
	id := b.submit(t, ask("Why is the sky blue?", "o", jobs.Options{Stream: true}))
	j := b.waitEnd(t, id)
	if j.Status != jobs.StatusCompleted {
		t.Fatalf("job = %+v %+v", j, j.Error)
	}
	r := j.Result
	for _, f := range []string{"reasoning", "answer", "key_concepts", "question_type"} {
		if r.Answer(f) == "" {
			t.Errorf("output %s is empty: %+v", f, r.Outputs)
		}
	}
	if r.Provenance.Model != "openai/gpt-4o-mini" || r.Provenance.Attempts != 1 || r.Provenance.LMCalls != 1 || len(r.Provenance.StateSHA256) != 64 {
		t.Errorf("provenance = %+v", r.Provenance)
	}
	var usage map[string]map[string]any
	if err := json.Unmarshal(r.Usage, &usage); err != nil || usage["openai/gpt-4o-mini"]["total_tokens"] == nil {
		t.Errorf("usage = %s (%v)", r.Usage, err)
	}
	evs := b.events(t, id)
	if got := types(evs); !strings.HasPrefix(got, "queued started token") || !strings.HasSuffix(got, "completed") {
		t.Fatalf("events = %s", got)
	}
	for _, f := range []string{"answer", "reasoning"} {
		if got := answerTokens(t, evs, f); got != r.Answer(f) {
			t.Errorf("%s tokens concatenate to %q, want %q", f, got, r.Answer(f))
		}
	}
	for i := 1; i < len(evs); i++ {
		if jobs.CompareIDs(evs[i-1].ID, evs[i].ID) >= 0 {
			t.Fatalf("events out of order at %d", i)
		}
	}
}

// TestDisableStreaming: with streaming off (ENABLE_STREAMING=false), a job
// that asks for tokens still runs, and publishes none.
func TestDisableStreaming(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.startWorker(t, worker.Config{DisableStreaming: true})
	id := b.submit(t, ask("Why is the sky blue?", "o", jobs.Options{Stream: true}))
	if j := b.waitEnd(t, id); j.Status != jobs.StatusCompleted {
		t.Fatalf("job = %+v %+v", j, j.Error)
	}
	if got := types(b.events(t, id)); got != "queued started completed" {
		t.Errorf("events = %s, want no token events", got)
	}
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.lm.FailNext(1, fakelm.Status429(time.Second))
	b.startWorker(t, worker.Config{})
	id := b.submit(t, ask("q?", "", jobs.Options{}))
	j := b.waitEnd(t, id)
	if j.Status != jobs.StatusCompleted || j.Attempts != 2 {
		t.Fatalf("job = %+v %+v", j, j.Error)
	}
	evs := b.events(t, id)
	if got := types(evs); got != "queued started retrying started completed" {
		t.Fatalf("events = %s", got)
	}
	var rd jobs.RetryingData
	_ = json.Unmarshal(evs[2].Data, &rd)
	if rd.RetryInMS != 1000 || rd.Attempt != 1 {
		t.Fatalf("retrying = %+v", rd)
	}
	// Not early: the second start comes at least Retry-After after the retry.
	if gap := idTime(evs[3].ID).Sub(idTime(evs[2].ID)); gap < time.Second {
		t.Fatalf("retried after %v, before Retry-After", gap)
	}
}

func idTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	var n int64
	for _, c := range ms {
		n = n*10 + int64(c-'0')
	}
	return time.UnixMilli(n)
}

func TestServerErrorRetriesAndBadRequestFails(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.startWorker(t, worker.Config{})
	retried := b.submit(t, ask("flaky [[fakelm:500,times=1]]", "", jobs.Options{}))
	failed := b.submit(t, ask("bad [[fakelm:400]]", "", jobs.Options{}))
	if j := b.waitEnd(t, retried); j.Status != jobs.StatusCompleted || j.Attempts != 2 {
		t.Fatalf("500 then ok: %+v %+v", j, j.Error)
	}
	j := b.waitEnd(t, failed)
	if j.Status != jobs.StatusFailed || j.Attempts != 1 || j.Error.Code != "lm_error" || j.Error.Status != 400 {
		t.Fatalf("400: %+v %+v", j, j.Error)
	}
	if got := types(b.events(t, failed)); got != "queued started failed" {
		t.Fatalf("events = %s", got)
	}
}

func TestParseFailureFallsBackThenFails(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.startWorker(t, worker.Config{})
	// Garbage once per distinct prompt (fakelm counts by messages): a JSON
	// fallback in the same attempt answers.
	once := b.submit(t, ask("once [[fakelm:garbage,times=1]]", "", jobs.Options{Stream: true}))
	j := b.waitEnd(t, once)
	if j.Status != jobs.StatusCompleted || j.Attempts != 1 || j.Result.Provenance.LMCalls < 2 {
		t.Fatalf("fallback: %+v %+v %+v", j, j.Error, j.Result.Provenance)
	}
	// What the chat attempt streamed was voided before the JSON attempt's.
	if evs := b.events(t, once); answerTokens(t, evs, "answer") != j.Result.Answer("answer") {
		t.Fatalf("tokens after the reset = %q, want %q (events %s)", answerTokens(t, evs, "answer"), j.Result.Answer("answer"), types(evs))
	}
	// Garbage always: chat, json_schema, json_object all fail; no retry.
	always := b.submit(t, ask("always [[fakelm:garbage]]", "", jobs.Options{}))
	j = b.waitEnd(t, always)
	if j.Status != jobs.StatusFailed || j.Attempts != 1 || j.Error.Code != "parse_error" {
		t.Fatalf("permanent parse failure: %+v %+v", j, j.Error)
	}
}

func TestCancelQueuedAndRunning(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	queued := b.submit(t, ask("q1", "", jobs.Options{}))
	if _, err := b.client.Cancel(ctx, queued); err != nil {
		t.Fatal(err)
	}
	b.startWorker(t, worker.Config{})
	running := b.submit(t, ask("slow [[fakelm:stall]]", "", jobs.Options{}))
	// Wait for the attempt to start, then cancel it.
	testwait.Until(t, "the job to start", func() bool {
		j, err := b.store.Get(ctx, running)
		return err == nil && j.Status == jobs.StatusRunning
	})
	if _, err := b.client.Cancel(ctx, running); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(b.db.Client)
	for _, id := range []string{queued, running} {
		if j, _ := b.store.Get(ctx, id); j.Status != jobs.StatusCancelled {
			t.Fatalf("job %s = %+v", id, j)
		}
		// The task disappears (revoked) and never runs again.
		testwait.Until(t, "task "+id+" to leave the queue", func() bool {
			_, err := insp.GetTaskInfo(jobs.QueueInteractive, id)
			return errors.Is(err, asynq.ErrTaskNotFound)
		})
		if got := count(b.events(t, id), jobs.EventStarted); got > 1 {
			t.Fatalf("job %s started %d times", id, got)
		}
	}
	if got := types(b.events(t, queued)); got != "queued cancelled" {
		t.Fatalf("queued job events = %s", got)
	}
}

func TestInteractiveOvertakesFullBatchQueue(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.lm.SetTTFT(100 * time.Millisecond)
	var batch []string
	for i := 0; i < 20; i++ {
		batch = append(batch, b.submit(t, onQueue(jobs.QueueBatch, ask("batch item", "", jobs.Options{NoCache: true}))))
	}
	b.startWorker(t, worker.Config{BatchConcurrency: 1})
	id := b.submit(t, ask("urgent", "", jobs.Options{NoCache: true}))
	if j := b.waitEnd(t, id); j.Status != jobs.StatusCompleted {
		t.Fatalf("interactive job = %+v", j)
	}
	done := 0
	for _, bid := range batch {
		if j, _ := b.store.Get(context.Background(), bid); j.Status.Terminal() {
			done++
		}
	}
	if done == len(batch) {
		t.Fatalf("the interactive job waited for the whole batch")
	}
}

func TestGracefulShutdownRequeuesUnfinishedJob(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	stopA := b.startWorker(t, worker.Config{ShutdownTimeout: time.Second, BatchConcurrency: -1})
	id := b.submit(t, ask("long [[fakelm:stall,times=1]]", "", jobs.Options{}))
	testwait.Until(t, "the job to start", func() bool {
		j, err := b.store.Get(ctx, id)
		return err == nil && j.Status == jobs.StatusRunning
	})
	stopA() // the stalled job outlives the shutdown timeout and goes back
	b.startWorker(t, worker.Config{BatchConcurrency: -1})
	j := b.waitEnd(t, id)
	// The interrupted run does not count as an attempt: it did not fail.
	if j.Status != jobs.StatusCompleted || j.Attempts != 1 {
		t.Fatalf("job = %+v %+v", j, j.Error)
	}
	evs := b.events(t, id)
	if count(evs, jobs.EventCompleted) != 1 || count(evs, jobs.EventStarted) != 2 || count(evs, jobs.EventRetrying) != 1 {
		t.Fatalf("events = %s", types(evs))
	}
}

func TestGracefulShutdownLetsInFlightJobFinish(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	stop := b.startWorker(t, worker.Config{ShutdownTimeout: 30 * time.Second, BatchConcurrency: -1})
	// The LM answers after a pause: the shutdown starts while it runs.
	id := b.submit(t, ask("pause [[fakelm:stall,for=500ms,times=1]]", "", jobs.Options{}))
	testwait.Until(t, "the job to start", func() bool {
		j, err := b.store.Get(ctx, id)
		return err == nil && j.Status == jobs.StatusRunning
	})
	stop() // returns once in-flight work is done
	j, err := b.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != jobs.StatusCompleted || count(b.events(t, id), jobs.EventStarted) != 1 {
		t.Fatalf("job after shutdown = %+v; events %s", j, types(b.events(t, id)))
	}
}

// TestLMCallsCountEveryAttempt: a job whose first attempt called the LM and
// failed (the answer was cut off mid-stream), then succeeded, reports both
// calls: lm_calls counts what the job cost, not what its last attempt did.
func TestLMCallsCountEveryAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.lm.SetTokensPerSecond(2000)
	b.startWorker(t, worker.Config{})
	id := b.submit(t, ask("cut off once [[fakelm:truncate,times=1]]", "o", jobs.Options{Stream: true}))
	j := b.waitEnd(t, id)
	if j.Status != jobs.StatusCompleted || j.Attempts != 2 {
		t.Fatalf("job = %+v %+v", j, j.Error)
	}
	if got := j.Result.Provenance.LMCalls; got != 2 || b.lm.Requests() != 2 {
		t.Fatalf("lm_calls = %d after %d LM requests, want 2", got, b.lm.Requests())
	}
}
