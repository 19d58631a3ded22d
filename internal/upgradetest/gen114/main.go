//go:build ignore

// Gen114 writes the upgrade fixture of release 114e39c: the Redis database
// that release's own code leaves behind (testdata/114e39c/redis.json, in
// redistest's snapshot format) and what its API answered about it
// (testdata/114e39c/states.json). package upgradetest restores the database
// under the current code and checks that nothing is lost.
//
// It runs the release's API, worker and program against its fake LM on a
// private redis-server, and leaves, for the owner "alice":
//   - three interactive jobs queued, with the old task payload (question in
//     it): plain, "stream" (the default), and "no_cache";
//   - a job queued with an Idempotency-Key;
//   - a completed, streamed job (record with result, event stream with tokens);
//   - a job whose first attempt failed (the LM answered 503 with Retry-After
//     30s), waiting in asynq's retry set, its record "retrying";
//   - a batch in flight (no_cache, with an Idempotency-Key): 5 items, the
//     first 4 expanded (as an expansion that stopped part way leaves them),
//     items 0 and 1 finished by the worker, 2 and 3 pending with the old item
//     payload, 4 without a task; its expansion pending on batch_control;
//   - a second batch in flight, for a cancel after the upgrade: 3 items, 2
//     with pending tasks, none run;
//   - a batch ended (completed): 3 items, one failed for good (LM 400).
//
// The batches' completion window is 100 years, so the in-flight batch stays
// inside it for as long as the fixture is used (its end is stored in the
// record, and the record is restored as written).
//
// It compiles only inside a checkout of that release, with the snapshot
// format copied in; from the root of a current checkout:
//
//	git worktree add /tmp/r114 114e39c
//	cp internal/redistest/snapshot.go /tmp/r114/internal/redistest/
//	cp internal/upgradetest/gen114/main.go /tmp/r114/gen114.go
//	(cd /tmp/r114 && go run gen114.go -out "$OLDPWD/internal/upgradetest/testdata/114e39c")
//	git worktree remove --force /tmp/r114
//
// Release 598fd38 (the next one) renamed the packages this wires together;
// 598fd38.patch adapts this file to it: in its checkout,
// `patch gen114.go < 598fd38.patch` before the `go run`, with
// -out ".../testdata/598fd38".
//
// Ids are random: each run writes a different, equivalent fixture.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/redisproc"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

const (
	release = "114e39c"
	owner   = "alice"
	apiKey  = "alice-key"
	window  = 100 * 365 * 24 * time.Hour
	// patience bounds each wait for the worker.
	patience = 60 * time.Second
)

// Manifest is states.json: what the fixture holds, and how the release
// answered about it.
type Manifest struct {
	Release string `json:"release"`
	// Owner is the API key's name that owns everything; APIKey is its key.
	Owner   string                  `json:"owner"`
	APIKey  string                  `json:"api_key"`
	Jobs    map[string]FixtureJob   `json:"jobs"`
	Batches map[string]FixtureBatch `json:"batches"`
	// Views are the release's answers to GET requests, by path, taken after
	// the dump (so they are not in it).
	Views map[string]View `json:"views"`
}

// FixtureJob is a job the fixture holds and the request that made it.
type FixtureJob struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Body is the POST /v1/jobs body.
	Body           json.RawMessage `json:"body"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Question       string          `json:"question"`
}

// FixtureBatch is a batch the fixture holds and the upload that made it.
type FixtureBatch struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Upload is the POST /v1/batches body (JSONL); Query its query string.
	Upload         string `json:"upload"`
	Query          string `json:"query,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	Total          int    `json:"total"`
}

// View is one answer of the release's API.
type View struct {
	Status int `json:"status"`
	// JSON is the body when it is JSON; Text otherwise (JSONL, SSE).
	JSON json.RawMessage `json:"json,omitempty"`
	Text string          `json:"text,omitempty"`
}

func main() {
	out := flag.String("out", "", "directory to write redis.json and states.json into")
	flag.Parse()
	if *out == "" {
		log.Fatal("gen114: -out is required")
	}
	if err := run(*out); err != nil {
		log.Fatalf("gen114: %v", err)
	}
}

// gen is the release's stack on one Redis.
type gen struct {
	rdb     *redis.Client
	lm      *fakelm.Server
	store   *jobs.Store
	batches *jobs.Batches
	insp    *asynq.Inspector
	url     string
	man     *Manifest
}

func run(out string) error {
	ctx := context.Background()
	gin.SetMode(gin.ReleaseMode)
	dir, err := os.MkdirTemp("", "gen114-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := redisproc.Start(dir)
	if err != nil {
		return err
	}
	defer srv.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()

	lm, err := fakelm.New(fakelm.Config{})
	if err != nil {
		return err
	}
	defer lm.Close()
	lc, err := lmclient.New(lmclient.Config{APIBase: lm.URL(), APIKey: "test", Timeout: 30 * time.Second}, lmclient.Deps{Redis: rdb})
	if err != nil {
		return err
	}
	defer lc.Close()
	store, err := jobs.NewStore(rdb, jobs.Config{})
	if err != nil {
		return err
	}
	batches, err := jobs.NewBatches(store, jobs.BatchConfig{CompletionWindow: window})
	if err != nil {
		return err
	}
	keys, err := config.ParseAPIKeys(owner + ":" + apiKey)
	if err != nil {
		return err
	}
	logger := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	hctx, stopHub := context.WithCancel(ctx)
	defer stopHub()
	hub := jobs.NewHub(hctx, rdb, logger)
	go hub.Run(hctx)
	defer hub.Close()
	a, err := api.New(api.Config{APIKeys: keys, BatchCompletionWindow: window},
		api.Deps{Redis: rdb, Client: jobs.NewClient(rdb, store), Store: store, Hub: hub, Log: logger, Registry: prometheus.NewRegistry()})
	if err != nil {
		return err
	}
	ts := httptest.NewServer(a.Handler())
	defer ts.Close()
	defer a.Shutdown(ctx)

	w, err := worker.New(worker.Config{Concurrency: 4, BatchConcurrency: 2, EnableStreaming: true, ShutdownTimeout: 10 * time.Second, ID: "gen114"},
		worker.Deps{Redis: rdb, Store: store, Runner: worker.NewProgramRunner(program.NewQA(), lc), Log: logger, Batches: batches})
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	defer w.Shutdown()

	g := &gen{rdb: rdb, lm: lm, store: store, batches: batches, insp: asynq.NewInspectorFromRedisClient(rdb), url: ts.URL,
		man: &Manifest{Release: release, Owner: owner, APIKey: apiKey, Jobs: map[string]FixtureJob{}, Batches: map[string]FixtureBatch{}, Views: map[string]View{}}}
	if err := g.withWorker(ctx); err != nil {
		return err
	}
	w.Shutdown()
	if err := g.afterWorker(ctx); err != nil {
		return err
	}

	snap, err := redistest.Dump(ctx, rdb)
	if err != nil {
		return err
	}
	snap.Source = "qaqueue " + release + " (internal/upgradetest/gen114)"
	if err := g.views(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := redistest.WriteSnapshot(filepath.Join(out, "redis.json"), snap); err != nil {
		return err
	}
	b, err := json.MarshalIndent(g.man, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "states.json"), append(b, '\n'), 0o644)
}

// withWorker makes the states the worker takes part in: a completed job, an
// ended batch, a batch part way, a job waiting to retry.
func (g *gen) withWorker(ctx context.Context) error {
	// A completed job, streamed (the default).
	done, err := g.submit("completed", "completed", `{"question":"What is the capital of France?"}`, "")
	if err != nil {
		return err
	}
	if err := g.waitJob(ctx, done, jobs.StatusCompleted); err != nil {
		return err
	}

	// A batch that ends: one item fails for good (the LM answers 400).
	ended := "{\"custom_id\":\"e-0\",\"question\":\"Who wrote Hamlet?\"}\n" +
		"{\"custom_id\":\"e-1\",\"question\":\"What is 2+2? [[fakelm:400]]\"}\n" +
		"{\"custom_id\":\"e-2\",\"question\":\"Why is the sky blue?\"}\n"
	endedID, err := g.upload("ended", "completed: 2 items completed, 1 failed (LM 400); results stored", ended, "", "")
	if err != nil {
		return err
	}
	if err := g.waitBatch(ctx, endedID, func(b *jobs.Batch) bool { return b.Status == jobs.BatchCompleted }); err != nil {
		return err
	}

	// A batch in flight: its expansion is held (batch_control paused) and
	// done by hand, in two steps of two items, as a running expansion
	// records its cursor; the first two items run, then items are held
	// (batch paused) while the next two get tasks.
	if err := g.insp.PauseQueue(jobs.QueueBatchControl); err != nil {
		return err
	}
	var flight strings.Builder
	for i, q := range []string{"What is the boiling point of water?", "Name a prime number.", "What colour is grass?",
		"How many legs has a spider?", "What is the largest ocean?"} {
		fmt.Fprintf(&flight, "{\"custom_id\":\"f-%d\",\"question\":%q}\n", i, q)
	}
	flightID, err := g.upload("in_flight", "in_progress: 5 items; expanded 4 (cursor 4); items 0, 1 completed; "+
		"items 2, 3 pending tasks with the old item payload; item 4 has no task; expansion pending on batch_control",
		flight.String(), "no_cache=true", "upgrade-114e39c-batch")
	if err != nil {
		return err
	}
	if _, err := g.batches.Expand(ctx, flightID, 2); err != nil {
		return err
	}
	if err := g.waitBatch(ctx, flightID, func(b *jobs.Batch) bool { return b.Counts.Completed == 2 }); err != nil {
		return err
	}
	if err := g.insp.PauseQueue(jobs.QueueBatch); err != nil {
		return err
	}
	if _, err := g.batches.Expand(ctx, flightID, 2); err != nil {
		return err
	}
	cancelID, err := g.upload("to_cancel", "in_progress: 3 items; expanded 2, pending tasks; none run; expansion pending on batch_control",
		"{\"custom_id\":\"c-0\",\"question\":\"What is a noun?\"}\n{\"custom_id\":\"c-1\",\"question\":\"What is a verb?\"}\n"+
			"{\"custom_id\":\"c-2\",\"question\":\"What is an adjective?\"}\n", "", "")
	if err != nil {
		return err
	}
	if _, err := g.batches.Expand(ctx, cancelID, 2); err != nil {
		return err
	}

	// A job whose first attempt fails with a retryable error and a
	// Retry-After long enough to outlast this run: the LM's next answer is
	// a 503 (a queued fault, not a directive, so the question is plain and
	// the LM answers it after the upgrade).
	g.lm.FailNext(1, fakelm.Fault{Kind: fakelm.FaultStatus, Status: 503, RetryAfter: 30 * time.Second})
	retry, err := g.submit("retrying", "retrying: attempt 1 failed (LM 503, Retry-After 30s); task in asynq's retry set",
		`{"question":"What is the speed of light?","stream":false}`, "")
	if err != nil {
		return err
	}
	return g.wait(ctx, "job "+retry+" in the retry set", func() (bool, error) {
		j, err := g.store.Get(ctx, retry)
		if err != nil {
			return false, err
		}
		info, err := g.insp.GetTaskInfo(jobs.QueueInteractive, retry)
		if err != nil {
			return false, err
		}
		return j.Status == jobs.StatusRetrying && info.State == asynq.TaskStateRetry, nil
	})
}

// afterWorker queues the jobs no worker takes, and lifts the pauses (they
// are not what an upgrade meets).
func (g *gen) afterWorker(ctx context.Context) error {
	for _, q := range []string{jobs.QueueBatchControl, jobs.QueueBatch} {
		if err := g.insp.UnpauseQueue(q); err != nil {
			return err
		}
	}
	for _, j := range []struct{ name, state, body, key string }{
		{"queued", "queued (stream off)", `{"question":"What is the tallest mountain?","stream":false}`, ""},
		{"queued_stream", "queued (stream on, the default)", `{"question":"Who painted the Mona Lisa?"}`, ""},
		{"queued_no_cache", "queued (no_cache, stream off)", `{"question":"What is the chemical symbol for gold?","no_cache":true,"stream":false}`, ""},
		{"idempotent", "queued with an Idempotency-Key", `{"question":"How far is the Moon?"}`, "upgrade-114e39c-job"},
	} {
		if _, err := g.submit(j.name, j.state, j.body, j.key); err != nil {
			return err
		}
	}
	// The release answers a replay with the same job.
	j := g.man.Jobs["idempotent"]
	resp, body, err := g.do("POST", "/v1/jobs", j.Body, j.IdempotencyKey)
	if err != nil {
		return err
	}
	var sub struct{ ID string }
	if err := json.Unmarshal(body, &sub); err != nil || resp.Header.Get("Idempotent-Replayed") != "true" || sub.ID != j.ID {
		return fmt.Errorf("replay of the idempotent job: %d %s", resp.StatusCode, body)
	}
	active := 0
	for _, q := range []string{jobs.QueueInteractive, jobs.QueueBatch, jobs.QueueBatchControl} {
		info, err := g.insp.GetQueueInfo(q)
		if err != nil {
			return err
		}
		active += info.Active
	}
	if active > 0 {
		return fmt.Errorf("%d tasks still active after the worker stopped", active)
	}
	return nil
}

// views records the release's answers about every job and batch.
func (g *gen) views(ctx context.Context) error {
	var paths []string
	for _, j := range g.man.Jobs {
		paths = append(paths, "/v1/jobs/"+j.ID)
	}
	done := g.man.Jobs["completed"].ID
	paths = append(paths, "/v1/jobs/"+done+"/events")
	for _, b := range g.man.Batches {
		paths = append(paths, "/v1/batches/"+b.ID, "/v1/batches/"+b.ID+"/results")
	}
	paths = append(paths, "/v1/batches/"+g.man.Batches["ended"].ID+"/events")
	for _, p := range paths {
		resp, body, err := g.do("GET", p, nil, "")
		if err != nil {
			return err
		}
		v := View{Status: resp.StatusCode}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			v.JSON = body
		} else {
			v.Text = string(body)
		}
		g.man.Views[p] = v
	}
	return nil
}

// submit posts a job and records it.
func (g *gen) submit(name, state, body, key string) (string, error) {
	resp, out, err := g.do("POST", "/v1/jobs", []byte(body), key)
	if err != nil {
		return "", err
	}
	var sub struct{ ID string }
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(out, &sub) != nil {
		return "", fmt.Errorf("submit %s: %d %s", name, resp.StatusCode, out)
	}
	var req struct{ Question string }
	_ = json.Unmarshal([]byte(body), &req)
	g.man.Jobs[name] = FixtureJob{ID: sub.ID, State: state, Body: json.RawMessage(body), IdempotencyKey: key, Question: req.Question}
	return sub.ID, nil
}

// upload posts a batch and records it.
func (g *gen) upload(name, state, upload, query, key string) (string, error) {
	path := "/v1/batches"
	if query != "" {
		path += "?" + query
	}
	resp, out, err := g.do("POST", path, []byte(upload), key)
	if err != nil {
		return "", err
	}
	var b struct{ ID string }
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(out, &b) != nil {
		return "", fmt.Errorf("upload %s: %d %s", name, resp.StatusCode, out)
	}
	g.man.Batches[name] = FixtureBatch{ID: b.ID, State: state, Upload: upload, Query: query, IdempotencyKey: key,
		Total: strings.Count(upload, "\n")}
	return b.ID, nil
}

func (g *gen) do(method, path string, body []byte, idemKey string) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.url+path, r)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp, out, err
}

func (g *gen) waitJob(ctx context.Context, id string, want jobs.Status) error {
	return g.wait(ctx, "job "+id+" "+string(want), func() (bool, error) {
		j, err := g.store.Get(ctx, id)
		if err != nil {
			return false, err
		}
		if j.Status.Terminal() && j.Status != want {
			return false, fmt.Errorf("job %s ended %s: %+v", id, j.Status, j.Error)
		}
		return j.Status == want, nil
	})
}

func (g *gen) waitBatch(ctx context.Context, id string, ok func(*jobs.Batch) bool) error {
	return g.wait(ctx, "batch "+id, func() (bool, error) {
		b, err := g.batches.Get(ctx, id)
		if err != nil {
			return false, err
		}
		return ok(b), nil
	})
}

// wait polls cond until it holds, with a generous deadline.
func (g *gen) wait(ctx context.Context, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(patience)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for %s: gave up after %s", what, patience)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
