package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// TestLongPollRedisCommands counts the Redis commands the API sends for one
// POST /v1/jobs and one GET /v1/jobs/{id}?wait= that waits for the job to
// end: the wait subscribes and reads the record once; the completed event
// carries the record's end (the same script wrote both), so it is not read
// again. A wait for a job that has ended already reads it once.
func TestLongPollRedisCommands(t *testing.T) {
	t.Parallel()
	log, db, b := countedAPI(t)
	finish := finisher(t, db)
	// A first round loads the scripts and asynq's queue list.
	id := b.submit(t, "warm up")
	finish(id)
	b.do(t, "GET", "/v1/jobs/"+id+"?wait=5s", nil, nil)
	log.Take(id)

	id = b.submit(t, "q")
	post := log.Take(id)
	// The job ends once the wait has read it with its subscription in
	// place (the read its wait then depends on).
	subscribedRead := make(chan struct{})
	var once sync.Once
	log.SetAfter(func(cmd redis.Cmder) {
		if cmd.Name() == "hgetall" && b.hub.Subscribers() > 0 {
			once.Do(func() { close(subscribedRead) })
		}
	})
	polled := make(chan []byte, 1)
	go func() {
		_, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait=30s", nil, nil)
		polled <- body
	}()
	select {
	case <-subscribedRead:
	case <-time.After(patience):
		t.Fatal("the wait never read the job")
	}
	log.SetAfter(nil)
	finish(id)
	body := <-polled
	if status := decode[jobBody](t, body).Status; status != "completed" {
		t.Fatalf("long poll answered %s", status)
	}
	wait := log.Take(id)
	_, again := b.do(t, "GET", "/v1/jobs/"+id+"?wait=30s", nil, nil)
	ended := log.Take(id)
	// Answered from the completed event, the job is what the record says.
	if string(body) != string(again) {
		t.Errorf("the long poll answered\n%s\nthe record says\n%s", body, again)
	}

	t.Logf("POST /v1/jobs: %d commands %q", len(post), post)
	t.Logf("GET ?wait= until the end: %d commands %q", len(wait), wait)
	t.Logf("GET ?wait= of an ended job: %d commands %q", len(ended), ended)
	read := "hgetall " + jobs.JobKey("<id>")
	if diff := cmp.Diff([]string{read}, wait); diff != "" {
		t.Errorf("a wait until the end (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{read}, ended); diff != "" {
		t.Errorf("a wait for an ended job (-want +got):\n%s", diff)
	}
}

// countedAPI is an API whose Redis commands log records (the hub's
// SUBSCRIBE goes around hooks), but for connection handshakes, the alias
// cache's refresh and the long poll's lease, taken once a wait has lasted a
// second (waitLeaseAfter): timing, not the work of a request. db.Client is
// not counted: a test's "worker" uses it.
func countedAPI(t *testing.T) (*redistest.CommandLog, *redistest.DB, *bundle) {
	t.Helper()
	db := redistest.New(t)
	log := &redistest.CommandLog{Keep: func(name, key string) bool {
		switch {
		case name == "client", name == "hello", name == "select":
			return false // a new connection's handshake (the hub dials at its first subscription)
		case name == "smembers" && key == "qa:programs",
			name == "hgetall" && strings.HasSuffix(key, ":aliases"),
			name == "zrange" && strings.HasSuffix(key, ":versions"):
			return false // the alias cache's refresh, once a second (programs.Registry.Run)
		}
		return !strings.HasPrefix(key, "qa:waits:")
	}}
	apiRedis := redis.NewClient(db.Options())
	apiRedis.AddHook(log)
	t.Cleanup(func() { _ = apiRedis.Close() })
	b := setup(t, options{
		db:  &redistest.DB{Addr: db.Addr, Index: db.Index, Client: apiRedis},
		api: api.Config{MetricsFlushInterval: time.Hour, Heartbeat: time.Hour},
	})
	return log, db, b
}

// finisher plays the worker, on its own client (not counted): it starts
// and completes a job, and takes its task off the queue, as asynq would.
func finisher(t *testing.T, db *redistest.DB) func(id string) {
	t.Helper()
	worker, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	return func(id string) {
		t.Helper()
		a, out, err := worker.Start(ctx, id, "w", 0)
		if err != nil || out != store.Started {
			t.Fatalf("start: %v %v", out, err)
		}
		complete(t, a, "done")
		if err := db.Client.LRem(ctx, "asynq:{"+jobs.QueueInteractive+"}:pending", 0, id).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPredictRedisCommands counts the Redis commands of POST /predict for a
// job that completes while it waits: the submit's only. It submits and
// waits as POST /v1/jobs?wait= does (store.Client.SubmitWait): subscribed
// before the job exists, answered from the completed event.
func TestPredictRedisCommands(t *testing.T) {
	t.Parallel()
	log, db, b := countedAPI(t)
	finish := finisher(t, db)
	// A first round loads the scripts and asynq's queue list.
	id := b.submit(t, "warm up")
	finish(id)
	log.Take(id)

	var resp *http.Response
	var body []byte
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, body = b.do(t, "POST", "/predict", map[string]any{"question": "q"}, nil)
	}()
	id = waitingSubmit(t, b, db)
	finish(id)
	wg.Wait()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /predict: %d %s", resp.StatusCode, body)
	}
	got := log.Take(id)
	t.Logf("POST /predict: %d commands %q", len(got), got)
	want := []string{"evalsha qa:job:<id>", "evalsha asynq:{" + jobs.QueueInteractive + "}:t:<id>"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("POST /predict (-want +got):\n%s", diff)
	}
}
