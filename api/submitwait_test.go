package api_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
)

// TestSubmitWait: POST /v1/jobs?wait= answers 200 with the job, the body GET
// /v1/jobs/{id} gives, once it ended within the wait; a replay of it (the
// same Idempotency-Key) answers the same at once; a bad wait is 422 naming
// wait and its limit, and submits nothing.
func TestSubmitWait(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startWorker(t, answerBehaviour)

	for _, wait := range []string{"30s", "30"} {
		resp, body := b.do(t, "POST", "/v1/jobs?wait="+wait, map[string]any{"question": "q " + wait}, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST ?wait=%s: %d %s", wait, resp.StatusCode, body)
		}
		j := decode[jobBody](t, body)
		if j.Status != "completed" || j.Queue != jobs.QueueInteractive {
			t.Errorf("POST ?wait=%s: %s on %q, want completed on the interactive queue", wait, j.Status, j.Queue)
		}
		if _, got := b.do(t, "GET", "/v1/jobs/"+j.ID, nil, nil); string(got) != string(body) {
			t.Errorf("POST ?wait=%s answered\n%s\nGET answers\n%s", wait, body, got)
		}
	}

	key := http.Header{"Idempotency-Key": {"submit-wait-1"}}
	resp, first := b.do(t, "POST", "/v1/jobs?wait=30s", map[string]any{"question": "once"}, key)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST ?wait= with a key: %d %s", resp.StatusCode, first)
	}
	resp, again := b.do(t, "POST", "/v1/jobs?wait=30s", map[string]any{"question": "once"}, key)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d, Idempotent-Replayed %q, want 200 and true", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"))
	}
	if string(again) != string(first) {
		t.Errorf("replay answered\n%s\nthe first request\n%s", again, first)
	}

	for _, bad := range []string{"soon", "-1s", "-1"} {
		resp, body := b.do(t, "POST", "/v1/jobs?wait="+bad, map[string]any{"question": "q"}, nil)
		e := decode[v1Error](t, body)
		if resp.StatusCode != http.StatusUnprocessableEntity || e.Error.Field != "wait" || !strings.Contains(e.Error.Message, "60s") {
			t.Errorf("wait=%s: %d %s, want 422 naming wait and its limit (60s)", bad, resp.StatusCode, body)
		}
	}
	keys, err := b.db.Client.Keys(context.Background(), jobs.JobKey("*")).Result()
	records := 0
	for _, k := range keys {
		if !strings.Contains(strings.TrimPrefix(k, jobs.JobKey("")), ":") { // not its events
			records++
		}
	}
	if err != nil || records != 3 {
		t.Errorf("job records: %d (%v), want the 3 submitted", records, err)
	}
}

// TestSubmitWaitNotEnded: a job that has not ended when the wait is over is
// answered as POST answers without one, 202 with Location, its status as it
// then is; a replay of it too.
func TestSubmitWaitNotEnded(t *testing.T) {
	t.Parallel()
	b := setup(t, options{}) // no worker: the job stays queued
	key := http.Header{"Idempotency-Key": {"not-ended"}}
	for i, want := range []string{"", "true"} {
		resp, body := b.do(t, "POST", "/v1/jobs?wait=0.05", map[string]any{"question": "q"}, key)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("request %d: %d %s, want 202", i, resp.StatusCode, body)
		}
		s := decode[submitted](t, body)
		if s.Status != "queued" || resp.Header.Get("Location") != "/v1/jobs/"+s.ID || s.Links["self"] != "/v1/jobs/"+s.ID ||
			resp.Header.Get("Retry-After") == "" || resp.Header.Get("Idempotent-Replayed") != want {
			t.Errorf("request %d: %s with Location %q, Retry-After %q, Idempotent-Replayed %q", i, body,
				resp.Header.Get("Location"), resp.Header.Get("Retry-After"), resp.Header.Get("Idempotent-Replayed"))
		}
	}
}

// TestSubmitWaitClientGone: a client that hangs up while POST ?wait= waits
// costs nothing further (no read, no subscription left), and its job goes
// on: hanging up is not cancelling.
func TestSubmitWaitClientGone(t *testing.T) {
	t.Parallel()
	log, db, b := countedAPI(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", b.url+"/v1/jobs?wait=60s", strings.NewReader(`{"question":"q"}`))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := b.http.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	id := waitingSubmit(t, b, db)
	// The hook logs the enqueue once its answer is back.
	testwait.Until(t, "the enqueue to be logged", func() bool {
		return slices.Contains(log.Take(id), "evalsha asynq:{"+jobs.QueueInteractive+"}:t:<id>")
	})
	cancel()
	<-done
	testwait.Until(t, "the wait to unsubscribe", func() bool { return b.hub.Subscribers() == 0 })
	if cmds := log.Take(id); len(cmds) > 0 {
		t.Errorf("after the client hung up the wait sent %q", cmds)
	}
	if st := b.jobStatus(t, id); st != jobs.StatusQueued {
		t.Errorf("job %s after its client hung up, want it queued still", st)
	}
}

// waitingSubmit waits until a POST ?wait= has submitted its job and waits on
// its subscription, and returns the job's id (the only task in the pending
// queue: the test runs no worker).
func waitingSubmit(t *testing.T, b *bundle, db *redistest.DB) string {
	t.Helper()
	var ids []string
	testwait.Until(t, "the job to be enqueued and waited for", func() bool {
		var err error
		ids, err = db.Client.LRange(context.Background(), "asynq:{"+jobs.QueueInteractive+"}:pending", 0, -1).Result()
		return err == nil && len(ids) == 1 && b.hub.Subscribers() > 0
	})
	return ids[0]
}

// TestSubmitWaitRedisCommands counts the Redis commands of POST
// /v1/jobs?wait= for a job that completes during the wait: the submit's
// only. It subscribes before the job exists, so the record is not read
// before the wait, and the completed event carries the record's end, so it
// is not read after: one read fewer than POST + GET ?wait=
// (TestLongPollRedisCommands). A replay of an ended job sends what a replay
// without wait sends.
func TestSubmitWaitRedisCommands(t *testing.T) {
	t.Parallel()
	log, db, b := countedAPI(t)
	finish := finisher(t, db)
	key := func(k string) http.Header { return http.Header{"Idempotency-Key": {k}} }
	// A first round loads the scripts and asynq's queue list.
	id := b.submit(t, "warm up")
	finish(id)
	log.Take(id)

	resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": "q"}, key("plain"))
	id = decode[submitted](t, body).ID
	post := log.Take(id)
	finish(id)
	b.do(t, "POST", "/v1/jobs", map[string]any{"question": "q"}, key("plain"))
	replay := unused(log.Take(id))

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, body = b.do(t, "POST", "/v1/jobs?wait=30s", map[string]any{"question": "q"}, key("waited"))
	}()
	id = waitingSubmit(t, b, db)
	finish(id)
	wg.Wait()
	if resp.StatusCode != http.StatusOK || decode[jobBody](t, body).Status != "completed" {
		t.Fatalf("POST ?wait=: %d %s", resp.StatusCode, body)
	}
	waited := log.Take(id)
	b.do(t, "POST", "/v1/jobs?wait=30s", map[string]any{"question": "q"}, key("waited"))
	replayWaited := unused(log.Take(id))

	t.Logf("POST /v1/jobs: %d commands %q", len(post), post)
	t.Logf("POST /v1/jobs?wait= until the end: %d commands %q", len(waited), waited)
	t.Logf("POST /v1/jobs?wait= replaying an ended job: %d commands %q", len(replayWaited), replayWaited)
	if diff := cmp.Diff(post, waited); diff != "" {
		t.Errorf("POST ?wait= until the end (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(replay, replayWaited); diff != "" {
		t.Errorf("a replay of an ended job with ?wait= (-want: without +got):\n%s", diff)
	}
}

// unused elides the id a replay drew for the job it did not create.
func unused(cmds []string) []string {
	for i, c := range cmds {
		cmds[i] = jobID.ReplaceAllString(c, "<unused>")
	}
	return cmds
}

var jobID = regexp.MustCompile(`[0-9a-f]{32}`)

// TestSubmitWaitOverWaitCap: a POST ?wait= of a key that holds its
// WAIT_MAX_PER_KEY long polls is answered, once it has waited its free
// second, with the 202 of its job, which was accepted: not the 429 a GET
// gets, which would read as "not submitted".
func TestSubmitWaitOverWaitCap(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{MaxWaitsPerKey: 1})})
	id := b.submitAs(t, aliceKey, "q")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan struct{})
	go func() {
		defer close(first)
		req, _ := http.NewRequestWithContext(ctx, "GET", b.url+"/v1/jobs/"+id+"?wait=60", nil)
		req.Header = bearer(aliceKey)
		if resp, err := b.http.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testwait.Until(t, "the first wait to take its lease", func() bool { return b.leases(t, "qa:waits:alice") == 1 })
	hdr := bearer(aliceKey)
	hdr.Set("Content-Type", "application/json")
	resp, body := b.do(t, "POST", "/v1/jobs?wait=60", map[string]any{"question": "q"}, hdr)
	s := decode[submitted](t, body)
	if resp.StatusCode != http.StatusAccepted || s.Status != "queued" || resp.Header.Get("Location") != "/v1/jobs/"+s.ID {
		t.Errorf("POST ?wait= over WAIT_MAX_PER_KEY: %d %s, Location %q; want the 202 of its queued job", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	cancel()
	<-first
}

// TestSubmitWaitAtShutdown: a POST ?wait= in flight when shutdown begins
// answers at once with its job's 202, the job as it is.
func TestSubmitWaitAtShutdown(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	b := setup(t, options{db: db}) // no worker: the job stays queued
	answered := make(chan string, 1)
	go func() {
		resp, body := b.do(t, "POST", "/v1/jobs?wait=60s", map[string]any{"question": "q"}, nil)
		s := decode[submitted](t, body)
		answered <- fmt.Sprint(resp.StatusCode, " ", s.Status, " ", resp.Header.Get("Location") == "/v1/jobs/"+s.ID)
	}()
	waitingSubmit(t, b, db)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-answered; got != "202 queued true" {
		t.Errorf("POST ?wait= at shutdown: %s, want 202 queued with its Location", got)
	}
}
