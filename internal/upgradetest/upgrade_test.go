package upgradetest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/programstest"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testlog"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	goleak.VerifyTestMain(m)
}

// TestUpgradeFrom114e39c restores what release 114e39c left in Redis (see
// gen114) and runs the current API and worker on it.
func TestUpgradeFrom114e39c(t *testing.T) { upgradeFrom(t, "testdata/114e39c") }

// TestUpgradeFrom598fd38 is the same for release 598fd38 (issue 13's
// hardening: per-owner quotas, batch retry rounds, lm_calls over attempts),
// the one deployments run before this one; gen114 with 598fd38.patch wrote it.
func TestUpgradeFrom598fd38(t *testing.T) { upgradeFrom(t, "testdata/598fd38") }

// upgradeFrom restores the fixture in dir and checks that the current API
// and worker take it over, losing nothing.
func upgradeFrom(t *testing.T, dir string) {
	e := setup(t, dir)

	// Before any worker runs: what the release wrote reads as it did, and
	// requests it accepted replay.
	t.Run("fixture holds the old payloads", e.checkOldPayloads)
	t.Run("records read as the release showed them", e.checkViews)
	t.Run("job Idempotency-Key replays", e.checkJobReplay)
	t.Run("batch Idempotency-Key replays", e.checkBatchReplay)
	e.cancelBatch(t, "to_cancel")

	e.startWorker(t)
	t.Run("queued jobs run their question", e.checkQueuedJobs)
	t.Run("retrying job runs again", e.checkRetryingJob)
	t.Run("in-flight batch completes", e.checkInFlightBatch)
	t.Run("cancelled batch ends and frees its quota", e.checkCancelledBatch)
	t.Run("ended batch still reads", e.checkEndedBatch)
	t.Run("nothing is left behind", e.checkNothingLeft)
}

// manifest is states.json (gen114's Manifest).
type manifest struct {
	Release string                  `json:"release"`
	Owner   string                  `json:"owner"`
	APIKey  string                  `json:"api_key"`
	Jobs    map[string]fixtureJob   `json:"jobs"`
	Batches map[string]fixtureBatch `json:"batches"`
	Views   map[string]view         `json:"views"`
}

type fixtureJob struct {
	ID             string          `json:"id"`
	Body           json.RawMessage `json:"body"`
	IdempotencyKey string          `json:"idempotency_key"`
	Question       string          `json:"question"`
}

type fixtureBatch struct {
	ID             string `json:"id"`
	Upload         string `json:"upload"`
	Query          string `json:"query"`
	IdempotencyKey string `json:"idempotency_key"`
	Total          int    `json:"total"`
}

type view struct {
	Status int             `json:"status"`
	JSON   json.RawMessage `json:"json"`
	Text   string          `json:"text"`
}

// env is the current code on the restored database.
type env struct {
	man     manifest
	db      *redistest.DB
	store   *store.Jobs
	batches *batches.Store
	insp    *asynq.Inspector
	lm      *lmRecorder
	lc      *lmclient.Client
	url     string
	http    *http.Client
	logs    *testlog.Buffer
	// usageBefore is the owner's batch quota usage before cancelBatch, and
	// cancelledBytes the stored inputs of the batch it cancels.
	usageBefore    batches.Usage
	cancelledBytes int64
}

func setup(t *testing.T, dir string) *env {
	t.Helper()
	e := &env{db: redistest.New(t), logs: &testlog.Buffer{}}
	b, err := os.ReadFile(filepath.Join(dir, "states.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &e.man); err != nil {
		t.Fatal(err)
	}
	redistest.Restore(t, e.db, filepath.Join(dir, "redis.json"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", e.logs.String())
		}
	})

	rdb := e.db.Client
	log := zerolog.New(e.logs)
	if e.store, err = store.NewJobs(rdb, store.Config{}); err != nil {
		t.Fatal(err)
	}
	if e.batches, err = batches.NewStore(e.store, batches.Config{}); err != nil {
		t.Fatal(err)
	}
	e.insp = asynq.NewInspectorFromRedisClient(rdb)
	ctx, cancel := context.WithCancel(context.Background())
	hub := store.NewHub(ctx, rdb, log)
	hubDone := make(chan struct{})
	go func() { hub.Run(ctx); close(hubDone) }()
	keys, err := config.ParseAPIKeys(e.man.Owner + ":" + e.man.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	registry := programstest.New(t, rdb, programs.Config{})
	srv, err := api.New(api.Config{APIKeys: keys}, api.Deps{
		Redis: rdb, Client: store.NewClient(rdb, e.store), Store: e.store, Hub: hub, Batches: e.batches, Programs: registry, Log: log, Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = srv.HTTPServer("")
	ts.Start()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), testwait.Patience)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		ts.Close()
		_ = hub.Close()
		cancel()
		<-hubDone
	})
	e.url, e.http = ts.URL, ts.Client()

	// The LM: the fake, behind a recorder of what it is asked. The LM
	// client keeps an in-memory cache, so a job's no_cache shows.
	e.lm = newLMRecorder(t)
	e.lc, err = lmclient.New(lmclient.Config{APIBase: e.lm.url, APIKey: "test", Timeout: 30 * time.Second, MemoryEnabled: true},
		lmclient.Deps{Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.lc.Close() })
	return e
}

// startWorker runs the current worker. The fixture's jobs were queued when
// it was written, so INTERACTIVE_MAX_WAIT is off: they would expire.
func (e *env) startWorker(t *testing.T) {
	t.Helper()
	w, err := worker.New(worker.Config{
		Concurrency: 4, BatchConcurrency: 2, InteractiveMaxWait: -1, ShutdownTimeout: 5 * time.Second, ID: "upgrade",
	}, worker.Deps{
		Redis: e.db.Client, Store: e.store, Runner: worker.NewProgramRunner(program.NewQA(), e.lc), Batches: e.batches,
		Log: zerolog.New(e.logs).With().Str("component", "worker").Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
}

// checkOldPayloads: the fixture is what it claims, tasks with the release's
// payloads (a job's question in its task; an item's batch, owner and
// no_cache in its).
func (e *env) checkOldPayloads(t *testing.T) {
	questions := map[string]string{}
	for _, j := range e.man.Jobs {
		questions[j.ID] = j.Question
	}
	pending, err := e.insp.ListPendingTasks(jobs.QueueInteractive)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"queued", "queued_stream", "queued_no_cache", "idempotent"} {
		j := e.man.Jobs[name]
		found := false
		for _, task := range pending {
			if task.ID != j.ID {
				continue
			}
			found = true
			var p struct {
				JobID    string `json:"job_id"`
				Question string `json:"question"`
				Owner    string `json:"owner"`
			}
			if err := json.Unmarshal(task.Payload, &p); err != nil || p.JobID != j.ID || p.Question != j.Question || p.Owner != e.man.Owner {
				t.Errorf("%s: task payload %s", name, task.Payload)
			}
		}
		if !found {
			t.Errorf("%s: job %s has no pending task", name, j.ID)
		}
	}
	retry, err := e.insp.ListRetryTasks(jobs.QueueInteractive)
	if err != nil || len(retry) != 1 || retry[0].ID != e.man.Jobs["retrying"].ID || retry[0].Retried != 1 {
		t.Errorf("retry set: %+v %v", retry, err)
	}
	items, err := e.insp.ListPendingTasks(jobs.QueueBatch)
	if err != nil {
		t.Fatal(err)
	}
	flight := e.man.Batches["in_flight"].ID
	var got []string
	for _, task := range items {
		var p struct {
			Batch struct {
				ID       string
				Index    int
				CustomID string `json:"custom_id"`
			}
			Owner   string
			NoCache bool `json:"no_cache"`
		}
		if err := json.Unmarshal(task.Payload, &p); err != nil || p.Owner != e.man.Owner {
			t.Errorf("item task payload %s", task.Payload)
		}
		if p.Batch.ID == flight {
			if !p.NoCache {
				t.Errorf("in-flight item without no_cache: %s", task.Payload)
			}
			got = append(got, p.Batch.CustomID)
		}
	}
	slices.Sort(got)
	if strings.Join(got, " ") != "f-2 f-3" {
		t.Errorf("in-flight batch's pending items %v, want f-2 f-3", got)
	}
}

// checkViews: every GET the release answered is answered the same (JSON
// compared as values, so key order is free). A JSON view may gain keys
// (GET /v1/jobs/{id} now shows the program and its inputs): a client of
// the release reads every key it knew, unchanged.
func (e *env) checkViews(t *testing.T) {
	for path, want := range e.man.Views {
		resp, body := e.do(t, "GET", path, nil, nil)
		if resp.StatusCode != want.Status {
			t.Errorf("GET %s: %d, the release answered %d", path, resp.StatusCode, want.Status)
			continue
		}
		switch {
		case want.JSON != nil:
			release := jsonValue(t, want.JSON)
			if d := cmp.Diff(release, keysOf(release, jsonValue(t, body))); d != "" {
				t.Errorf("GET %s differs (-release +now):\n%s", path, d)
			}
		case strings.HasSuffix(path, "/events"):
			if d := cmp.Diff(sseFrames(t, want.Text), sseFrames(t, string(body))); d != "" {
				t.Errorf("GET %s differs (-release +now):\n%s", path, d)
			}
		default: // JSONL results
			if d := cmp.Diff(jsonLines(t, want.Text), jsonLines(t, string(body))); d != "" {
				t.Errorf("GET %s differs (-release +now):\n%s", path, d)
			}
		}
	}
}

// checkJobReplay: the same {"question": …} body with the same
// Idempotency-Key returns the job the release accepted, and queues nothing.
func (e *env) checkJobReplay(t *testing.T) {
	j := e.man.Jobs["idempotent"]
	before := e.pendingCount(t, jobs.QueueInteractive)
	resp, body := e.do(t, "POST", "/v1/jobs", j.Body, http.Header{"Idempotency-Key": {j.IdempotencyKey}})
	var sub struct{ ID string }
	if err := json.Unmarshal(body, &sub); err != nil || resp.StatusCode != http.StatusAccepted || sub.ID != j.ID ||
		resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s (Idempotent-Replayed %q), want 202 with job %s", resp.StatusCode, body, resp.Header.Get("Idempotent-Replayed"), j.ID)
	}
	if after := e.pendingCount(t, jobs.QueueInteractive); after != before {
		t.Errorf("the replay queued a task: %d pending, %d before", after, before)
	}
}

// checkBatchReplay: the same upload with the same Idempotency-Key returns
// the batch the release accepted.
func (e *env) checkBatchReplay(t *testing.T) {
	b := e.man.Batches["in_flight"]
	resp, body := e.do(t, "POST", "/v1/batches?"+b.Query, []byte(b.Upload), http.Header{"Idempotency-Key": {b.IdempotencyKey}})
	var got struct{ ID string }
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != http.StatusAccepted || got.ID != b.ID ||
		resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s (Idempotent-Replayed %q), want 202 with batch %s", resp.StatusCode, body, resp.Header.Get("Idempotent-Replayed"), b.ID)
	}
}

// cancelBatch cancels a batch before the worker runs, so none of its items
// has started.
func (e *env) cancelBatch(t *testing.T, name string) {
	t.Helper()
	// What the owner's quota holds before, and what the cancel should free
	// of it: the inputs of the batch's items, none of which has started.
	ctx := context.Background()
	var err error
	if e.usageBefore, err = e.batches.Usage(ctx, e.man.Owner); err != nil {
		t.Fatal(err)
	}
	items := jobs.BatchItemsKey(e.man.Batches[name].ID)
	for _, f := range e.db.Client.HKeys(ctx, items).Val() {
		e.cancelledBytes += e.db.Client.HStrLen(ctx, items, f).Val()
	}
	resp, body := e.do(t, "POST", "/v1/batches/"+e.man.Batches[name].ID+"/cancel", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cancel %s: %d %s", name, resp.StatusCode, body)
	}
}

// checkQueuedJobs: each job the release queued completes with the answer
// its question gets now (a fresh job asking the same is answered the
// same), having asked the LM its question; stream and no_cache hold.
func (e *env) checkQueuedJobs(t *testing.T) {
	for _, name := range []string{"queued", "queued_stream", "queued_no_cache", "idempotent"} {
		j := e.man.Jobs[name]
		got := e.waitJob(t, j.ID)
		if got.Status != "completed" || got.Attempts != 1 || got.Question != j.Question {
			t.Errorf("%s: %s after %d attempts, question %q: %+v", name, got.Status, got.Attempts, got.Question, got.Error)
			continue
		}
		if n := e.lm.asked(j.Question); n != 1 {
			t.Errorf("%s: the LM was asked %q %d times, want 1", name, j.Question, n)
		}
		fresh := e.waitJob(t, e.submit(t, `{"question":`+quote(j.Question)+`,"stream":false}`))
		if d := cmp.Diff(fresh.Result.Outputs, got.Result.Outputs); d != "" {
			t.Errorf("%s: outputs differ from a fresh job's (-fresh +old):\n%s", name, d)
		}
		// A job that bypassed the cache left nothing in it for the fresh
		// one; the others did.
		if wantHit := name != "queued_no_cache"; fresh.Result.Provenance.CacheHit != wantHit {
			t.Errorf("%s: the fresh job's cache_hit is %v, want %v", name, fresh.Result.Provenance.CacheHit, wantHit)
		}
	}
	// Token events for the job that asked for them (the default), none for
	// those that did not.
	for name, want := range map[string]bool{"queued_stream": true, "idempotent": true, "queued": false, "queued_no_cache": false} {
		tokens := 0
		for _, f := range e.events(t, "/v1/jobs/"+e.man.Jobs[name].ID+"/events") {
			if f.Event == "token" {
				tokens++
			}
		}
		if (tokens > 0) != want {
			t.Errorf("%s: %d token events, want some: %v", name, tokens, want)
		}
	}
}

// checkRetryingJob: the job whose first attempt failed runs its second and
// completes.
func (e *env) checkRetryingJob(t *testing.T) {
	j := e.man.Jobs["retrying"]
	got := e.waitJob(t, j.ID)
	if got.Status != "completed" || got.Attempts != 2 || got.Result.Provenance.Attempts != 2 {
		t.Fatalf("retrying job: %s after %d attempts: %+v", got.Status, got.Attempts, got.Error)
	}
	if n := e.lm.asked(j.Question); n != 1 {
		t.Errorf("the LM was asked %q %d times after the upgrade, want 1", j.Question, n)
	}
}

// checkInFlightBatch: the batch the release left part way completes, every
// item counted once, its results in input order; the items the release
// finished keep their lines and do not run again, the others run (with
// no_cache) and answer their questions.
func (e *env) checkInFlightBatch(t *testing.T) {
	b := e.man.Batches["in_flight"]
	got := e.waitBatch(t, b.ID)
	want := batchCounts{Total: 5, Completed: 5}
	if got.Status != "completed" || got.RequestCounts != want {
		t.Fatalf("in-flight batch: %s %+v, want completed %+v", got.Status, got.RequestCounts, want)
	}
	old := jsonLines(t, e.man.Views["/v1/batches/"+b.ID+"/results"].Text)
	_, body := e.do(t, "GET", "/v1/batches/"+b.ID+"/results", nil, nil)
	lines := jsonLines(t, string(body))
	if len(lines) != b.Total {
		t.Fatalf("%d result lines, want %d:\n%s", len(lines), b.Total, body)
	}
	questions := uploadQuestions(t, b.Upload)
	for i, line := range lines {
		r := line.(map[string]any)
		if id := "f-" + strconv.Itoa(i); r["custom_id"] != id || r["status"] != "completed" || r["attempts"] != 1.0 {
			t.Errorf("line %d: %v, want %s completed after 1 attempt", i, r, id)
		}
		asked := e.lm.asked(questions[i])
		if i < len(old) {
			if d := cmp.Diff(old[i], line); d != "" {
				t.Errorf("line %d, finished by the release, changed (-release +now):\n%s", i, d)
			}
			if asked != 0 {
				t.Errorf("item %d, finished by the release, ran again", i)
			}
			continue
		}
		if asked != 1 {
			t.Errorf("item %d: the LM was asked %q %d times, want 1", i, questions[i], asked)
		}
		fresh := e.waitJob(t, e.submit(t, `{"question":`+quote(questions[i])+`,"stream":false}`))
		if d := cmp.Diff(any(fresh.Result.Outputs), r["outputs"]); d != "" {
			t.Errorf("item %d: outputs differ from a fresh job's (-fresh +item):\n%s", i, d)
		}
		if fresh.Result.Provenance.CacheHit {
			t.Errorf("item %d ran with the cache: its batch is no_cache", i)
		}
	}
}

// checkCancelledBatch: the batch cancelled before the worker ran ends
// cancelled, every item counted, and its inputs leave the owner's batch
// quota: a release before quotas (114e39c) counted nothing there, and
// nothing goes below zero; a release with them (598fd38) counted the batch's
// items and bytes, and the bytes of its unstarted inputs are freed (an
// accepted item counts until its batch expires).
func (e *env) checkCancelledBatch(t *testing.T) {
	b := e.man.Batches["to_cancel"]
	got := e.waitBatch(t, b.ID)
	if want := (batchCounts{Total: 3, Cancelled: 3}); got.Status != "cancelled" || got.RequestCounts != want {
		t.Fatalf("cancelled batch: %s %+v, want cancelled %+v", got.Status, got.RequestCounts, want)
	}
	for _, q := range uploadQuestions(t, b.Upload) {
		if n := e.lm.asked(q); n != 0 {
			t.Errorf("a cancelled item ran: the LM was asked %q", q)
		}
	}
	u, err := e.batches.Usage(context.Background(), e.man.Owner)
	if err != nil {
		t.Fatal(err)
	}
	want := batches.Usage{}
	if e.usageBefore != (batches.Usage{}) {
		want = batches.Usage{Items: e.usageBefore.Items, Bytes: e.usageBefore.Bytes - e.cancelledBytes}
	}
	t.Logf("the owner's batch usage: %+v before the cancel, %+v after; the cancelled inputs: %d bytes", e.usageBefore, u, e.cancelledBytes)
	if u != want {
		t.Errorf("the owner's batch usage is %+v after the cancel, want %+v (before it: %+v; the cancelled inputs: %d bytes)",
			u, want, e.usageBefore, e.cancelledBytes)
	}
}

// checkEndedBatch: the ended batch's record and results read as the release
// showed them, after the worker ran too.
func (e *env) checkEndedBatch(t *testing.T) {
	id := e.man.Batches["ended"].ID
	for _, path := range []string{"/v1/batches/" + id, "/v1/batches/" + id + "/results"} {
		want := e.man.Views[path]
		_, body := e.do(t, "GET", path, nil, nil)
		if want.JSON != nil {
			release := jsonValue(t, want.JSON)
			if d := cmp.Diff(release, keysOf(release, jsonValue(t, body))); d != "" {
				t.Errorf("GET %s differs (-release +now):\n%s", path, d)
			}
		} else if d := cmp.Diff(jsonLines(t, want.Text), jsonLines(t, string(body))); d != "" {
			t.Errorf("GET %s differs (-release +now):\n%s", path, d)
		}
	}
}

// checkNothingLeft: every task the release queued has run (only the
// batches' window checks, scheduled at their windows' ends, and the item the
// release archived remain); no owner counts as running a batch; and every
// job and batch key expires (the release left some of a running batch's
// keys without a TTL until it ended).
func (e *env) checkNothingLeft(t *testing.T) {
	ctx := context.Background()
	for _, q := range []string{jobs.QueueInteractive, jobs.QueueBatch, jobs.QueueBatchControl} {
		testwait.Until(t, "queue "+q+" to drain", func() bool {
			info, err := e.insp.GetQueueInfo(q)
			return err == nil && info.Pending+info.Active+info.Retry == 0
		})
	}
	if n, err := e.batches.ActiveOwners(ctx); err != nil || n != 0 {
		t.Errorf("%d owners count as running batches (%v), want 0", n, err)
	}
	for _, pattern := range []string{"qa:job:*", "qa:batch:*"} {
		keys, err := e.db.Client.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if ttl, err := e.db.Client.PTTL(ctx, k).Result(); err != nil || ttl < 0 {
				t.Errorf("%s does not expire (PTTL %v, %v)", k, ttl, err)
			}
		}
	}
}

// jobView is what GET /v1/jobs/{id} answers, as far as the checks read it.
type jobView struct {
	ID       string
	Status   string
	Question string
	Attempts int
	Error    *jobs.Error
	Result   *struct {
		Outputs    map[string]any
		Provenance struct {
			CacheHit bool `json:"cache_hit"`
			Attempts int
		}
	}
}

type batchCounts struct {
	Total, Completed, Failed, Cancelled int
}

type batchView struct {
	Status        string
	RequestCounts batchCounts `json:"request_counts"`
}

// waitJob long-polls a job until it ends.
func (e *env) waitJob(t *testing.T, id string) jobView {
	t.Helper()
	var j jobView
	testwait.Until(t, "job "+id+" to end", func() bool {
		resp, body := e.do(t, "GET", "/v1/jobs/"+id+"?wait=5s", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET job %s: %d %s", id, resp.StatusCode, body)
		}
		j = decode[jobView](t, body)
		return jobs.Status(j.Status).Terminal()
	})
	return j
}

// waitBatch polls a batch until it ends.
func (e *env) waitBatch(t *testing.T, id string) batchView {
	t.Helper()
	var b batchView
	testwait.Until(t, "batch "+id+" to end", func() bool {
		resp, body := e.do(t, "GET", "/v1/batches/"+id, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET batch %s: %d %s", id, resp.StatusCode, body)
		}
		b = decode[batchView](t, body)
		return jobs.BatchStatus(b.Status).Terminal()
	})
	return b
}

func (e *env) submit(t *testing.T, body string) string {
	t.Helper()
	resp, out := e.do(t, "POST", "/v1/jobs", []byte(body), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit %s: %d %s", body, resp.StatusCode, out)
	}
	return decode[struct{ ID string }](t, out).ID
}

func (e *env) events(t *testing.T, path string) []sseFrame {
	t.Helper()
	resp, body := e.do(t, "GET", path, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return sseFrames(t, string(body))
}

func (e *env) pendingCount(t *testing.T, queue string) int {
	t.Helper()
	info, err := e.insp.GetQueueInfo(queue)
	if err != nil {
		t.Fatal(err)
	}
	return info.Pending
}

// do sends a request as the fixture's owner and reads the whole answer.
func (e *env) do(t *testing.T, method, path string, body []byte, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Patience)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.man.APIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, out
}

// lmRecorder serves the fake LM and keeps the body of every request.
type lmRecorder struct {
	url    string
	mu     sync.Mutex
	bodies []string
}

func newLMRecorder(t *testing.T) *lmRecorder {
	t.Helper()
	lm, err := fakelm.NewUnstarted(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := &lmRecorder{}
	h := lm.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(body))
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(ts.Close)
	r.url = ts.URL + "/v1"
	return r
}

// asked counts the LM requests whose prompt holds question.
func (r *lmRecorder) asked(question string) int {
	q, _ := json.Marshal(question)
	needle := strings.Trim(string(q), `"`)
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range r.bodies {
		if strings.Contains(b, needle) {
			n++
		}
	}
	return n
}

// sseFrame is one server-sent event, its data as a JSON value.
type sseFrame struct {
	ID, Event string
	Data      any
}

func sseFrames(t *testing.T, text string) []sseFrame {
	t.Helper()
	var out []sseFrame
	var f sseFrame
	var data []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if f.Event != "" || data != nil {
				f.Data = jsonValue(t, []byte(strings.Join(data, "\n")))
				out = append(out, f)
			}
			f, data = sseFrame{}, nil
		case strings.HasPrefix(line, "id: "):
			f.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			f.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
	return out
}

func jsonLines(t *testing.T, text string) []any {
	t.Helper()
	var out []any
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line != "" {
			out = append(out, jsonValue(t, []byte(line)))
		}
	}
	return out
}

func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, b, err)
	}
	return v
}

func uploadQuestions(t *testing.T, upload string) []string {
	t.Helper()
	var qs []string
	for _, line := range jsonLines(t, upload) {
		qs = append(qs, line.(map[string]any)["question"].(string))
	}
	return qs
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// keysOf is got with only the object keys that want has, at every depth:
// what a client that knew want's shape reads of got.
func keysOf(want, got any) any {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return got
		}
		out := make(map[string]any, len(w))
		for k, wv := range w {
			if gv, ok := g[k]; ok {
				out[k] = keysOf(wv, gv)
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return got
		}
		out := make([]any, len(g))
		for i := range g {
			out[i] = keysOf(w[i], g[i])
		}
		return out
	}
	return got
}
