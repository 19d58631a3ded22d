package api_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
)

// Long-lived responses are bounded per key: results downloads that wait
// count as streams, ?wait= long polls take a lease of their own once they
// have waited a second, and a results download that waits has a heartbeat
// and a maximum duration.

// openLong starts a GET whose answer may not end by itself and returns it
// with its body unread; the request is cancelled when the test ends.
func (b *bundle) openLong(t *testing.T, path string, hdr http.Header) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	req, err := http.NewRequestWithContext(ctx, "GET", b.url+path, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header = hdr.Clone()
	resp, err := b.http.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return resp
}

// runningAndEndedBatches uploads, as alice, a batch whose one item the
// worker holds until the test ends, and a batch that completes.
func runningAndEndedBatches(t *testing.T, b *bundle) (running, ended string) {
	t.Helper()
	g := newGate()
	t.Cleanup(func() { close(g.open) })
	b.startBatchWorker(t, g.run, worker.Config{})
	running = b.upload(t, jsonl(`{"question":"slow q"}`), "application/x-ndjson", bearer(aliceKey)).ID
	ended = b.upload(t, jsonl(`{"question":"q"}`), "application/x-ndjson", bearer(aliceKey)).ID
	testwait.Until(t, "the ended batch to complete and the running one to start", func() bool {
		return g.started.Load() == 1 && b.batch(t, ended, aliceKey).Status == "completed"
	})
	return running, ended
}

// leases counts the leases in a key's lease set.
func (b *bundle) leases(t *testing.T, key string) int64 {
	t.Helper()
	n, err := b.db.Client.ZCard(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBatchResultsWaitIsAStream: with SSE_MAX_STREAMS_PER_KEY at N, a key
// holding N results downloads that wait gets 429 for one more, naming the
// variable, and for an event stream too (one count); a download that does
// not wait, or that waits on an ended batch, is not a stream and is served;
// closing one frees its slot.
func TestBatchResultsWaitIsAStream(t *testing.T) {
	t.Parallel()
	const limit = 2
	b := setup(t, options{api: secured(t, api.Config{MaxStreamsPerKey: limit})})
	running, ended := runningAndEndedBatches(t, b)
	wait := "/v1/batches/" + running + "/results?wait=true"
	var open []*http.Response
	for range limit {
		resp := b.openLong(t, wait, bearer(aliceKey))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("results wait within the limit: %d", resp.StatusCode)
		}
		open = append(open, resp)
	}
	if n := b.leases(t, "qa:streams:alice"); n != limit {
		t.Errorf("leases held by %d results waits: %d", limit, n)
	}
	for _, path := range []string{wait, "/v1/batches/" + running + "/events"} {
		resp, body := b.do(t, "GET", path, nil, bearer(aliceKey))
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
			!strings.Contains(string(body), `"code":"too_many_streams"`) || !strings.Contains(string(body), "SSE_MAX_STREAMS_PER_KEY") {
			t.Errorf("GET %s over the limit: %d %q %s", path, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	for _, path := range []string{"/v1/batches/" + running + "/results", "/v1/batches/" + ended + "/results?wait=true"} {
		if resp, body := b.do(t, "GET", path, nil, bearer(aliceKey)); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s (not a stream) at the limit: %d %s", path, resp.StatusCode, body)
		}
	}
	open[0].Body.Close()
	testwait.Until(t, "a closed results wait to free its slot", func() bool {
		return b.streamStatus(t, wait, bearer(aliceKey)) == http.StatusOK
	})
}

// TestBatchResultsWaitHeartbeat: a results download waiting on an
// unfinished item sends an empty line every heartbeat, so proxies keep the
// connection; JSONL readers skip it.
func TestBatchResultsWaitHeartbeat(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{Heartbeat: 20 * time.Millisecond})})
	running, _ := runningAndEndedBatches(t, b)
	resp := b.openLong(t, "/v1/batches/"+running+"/results?wait=true", bearer(aliceKey))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("results wait: %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 2 {
		line, err := br.ReadString('\n')
		if err != nil || line != "\n" {
			t.Fatalf("heartbeat %d: %q, %v; want an empty line", i+1, line, err)
		}
	}
}

// continueLine is the last line of a results download that ended early.
type continueLine struct {
	Object string `json:"object"`
	Offset int    `json:"offset"`
	Next   string `json:"next"`
	Reason string `json:"reason"`
}

// TestBatchResultsWaitMaxDuration: a results download that waits ends after
// BATCH_RESULTS_MAX_WAIT with a last line telling where to resume; resuming
// there with ?offset= gets the rest, without repeats. A bad offset is 422
// naming it.
func TestBatchResultsWaitMaxDuration(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{BatchResultsMaxWait: 50 * time.Millisecond})})
	g := newGate()
	b.startBatchWorker(t, g.run, worker.Config{})
	v := b.upload(t, jsonl(`{"custom_id":"a","question":"q"}`, `{"custom_id":"b","question":"slow q"}`), "application/x-ndjson", bearer(aliceKey))
	testwait.Until(t, "the first item to complete", func() bool { return b.batch(t, v.ID, aliceKey).RequestCounts.Completed == 1 })
	path := "/v1/batches/" + v.ID + "/results?wait=true"
	resp, body := b.do(t, "GET", path, nil, bearer(aliceKey))
	lines := nonEmptyLines(string(body))
	if resp.StatusCode != http.StatusOK || len(lines) != 2 {
		t.Fatalf("results wait past BATCH_RESULTS_MAX_WAIT: %d %q", resp.StatusCode, body)
	}
	if r := decode[resultLine](t, []byte(lines[0])); r.CustomID != "a" {
		t.Errorf("first line: %s", lines[0])
	}
	cont := decode[continueLine](t, []byte(lines[1]))
	if cont.Object != "batch.results.continue" || cont.Offset != 1 || cont.Next != path+"&offset=1" || cont.Reason != "max_wait" {
		t.Errorf("last line: %s", lines[1])
	}
	close(g.open)
	b.waitBatch(t, v.ID, aliceKey, "completed")
	resp, body = b.do(t, "GET", cont.Next, nil, bearer(aliceKey))
	lines = nonEmptyLines(string(body))
	if resp.StatusCode != http.StatusOK || len(lines) != 1 || decode[resultLine](t, []byte(lines[0])).CustomID != "b" {
		t.Errorf("resumed at offset 1: %d %q", resp.StatusCode, body)
	}
	for _, bad := range []string{"-1", "x", "3", "1.5"} {
		resp, body := b.do(t, "GET", "/v1/batches/"+v.ID+"/results?offset="+bad, nil, bearer(aliceKey))
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"field":"offset"`) {
			t.Errorf("offset=%s: %d %s", bad, resp.StatusCode, body)
		}
	}
	if resp, body := b.do(t, "GET", "/v1/batches/"+v.ID+"/results?wait=soon", nil, bearer(aliceKey)); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"field":"wait"`) {
		t.Errorf("wait=soon: %d %s", resp.StatusCode, body)
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestShortWaitTakesNoLease: a ?wait= long poll that ends within a second
// never touches the key's wait leases (an expired lease left there would be
// pruned by any acquire); one that waits longer takes a lease, and gives it
// back before it answers.
func TestShortWaitTakesNoLease(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	id := b.submitAs(t, aliceKey, "q")
	ctx := context.Background()
	const leases = "qa:waits:alice"
	if err := b.db.Client.ZAdd(ctx, leases, redis.Z{Score: 1, Member: "expired"}).Err(); err != nil {
		t.Fatal(err)
	}
	resp, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait=500ms", nil, bearer(aliceKey))
	if resp.StatusCode != http.StatusOK || decode[submitted](t, body).Status != "queued" {
		t.Fatalf("short wait: %d %s", resp.StatusCode, body)
	}
	if score, err := b.db.Client.ZScore(ctx, leases, "expired").Result(); err != nil || score != 1 {
		t.Errorf("a wait under a second touched the wait leases: %v %v", score, err)
	}
	resp, body = b.do(t, "GET", "/v1/jobs/"+id+"?wait=1500ms", nil, bearer(aliceKey))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("long wait: %d %s", resp.StatusCode, body)
	}
	if n := b.leases(t, leases); n != 0 {
		t.Errorf("after a wait past a second: %d leases, want its own given back and the expired one pruned", n)
	}
}

// TestWaitMaxPerKey: a key holding WAIT_MAX_PER_KEY long polls gets 429 for
// one more, naming the variable, once that one has waited its free second;
// another key is not affected; the lease is given back when the wait ends.
func TestWaitMaxPerKey(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{MaxWaitsPerKey: 1})})
	id := b.submitAs(t, aliceKey, "q")
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", b.url+"/v1/jobs/"+id+"?wait=60", nil)
		req.Header = bearer(aliceKey)
		resp, err := b.http.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	testwait.Until(t, "the first wait to take its lease", func() bool { return b.leases(t, "qa:waits:alice") == 1 })
	resp, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait=60", nil, bearer(aliceKey))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), `"code":"too_many_waits"`) || !strings.Contains(string(body), "WAIT_MAX_PER_KEY") {
		t.Errorf("a second wait over WAIT_MAX_PER_KEY: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	bobs := b.submitAs(t, bobKey, "q")
	if resp, body := b.do(t, "GET", "/v1/jobs/"+bobs+"?wait=1100ms", nil, bearer(bobKey)); resp.StatusCode != http.StatusOK {
		t.Errorf("bob's wait while alice is at her limit: %d %s", resp.StatusCode, body)
	}
	complete(t, b.start(t, id), "done")
	select {
	case status := <-first:
		if status != http.StatusOK {
			t.Errorf("the first wait: %d", status)
		}
	case <-time.After(patience):
		t.Fatal("the first wait did not end with its job")
	}
	if n := b.leases(t, "qa:waits:alice"); n != 0 {
		t.Errorf("leases after the wait answered: %d", n)
	}
}

// TestLeaseCapsShareRetryAfter: the three lease caps (open streams, long
// polls, uploads in progress) answer their 429 with one Retry-After, the
// server's busy hint, whatever the other hints are set to.
func TestLeaseCapsShareRetryAfter(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{
		MaxStreamsPerKey: 1, MaxWaitsPerKey: 1, BatchUploadsPerKey: 1,
		BusyRetryAfter: 7 * time.Second, ReconnectDelay: 2 * time.Second, PollAfter: 3 * time.Second,
	})})
	id := b.submitAs(t, aliceKey, "q")
	// Each of alice's lease sets is full: one lease that ends in the year
	// 2286, as if held by another replica.
	for _, set := range []string{"qa:streams:alice", "qa:waits:alice", "qa:uploads:alice"} {
		if err := b.db.Client.ZAdd(context.Background(), set, redis.Z{Score: 1e13, Member: "held"}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, req := range []struct {
		method, path, code string
		body               any
		hdr                http.Header
	}{
		{"GET", "/v1/jobs/" + id + "/events", "too_many_streams", nil, bearer(aliceKey)},
		{"GET", "/v1/jobs/" + id + "?wait=60", "too_many_waits", nil, bearer(aliceKey)},
		{"POST", "/v1/batches", "too_many_uploads", jsonl(`{"question":"q"}`), with(bearer(aliceKey), "Content-Type", "application/x-ndjson")},
	} {
		resp, body := b.do(t, req.method, req.path, req.body, req.hdr)
		if resp.StatusCode != http.StatusTooManyRequests || decode[v1Error](t, body).Error.Code != req.code || resp.Header.Get("Retry-After") != "7" {
			t.Errorf("%s %s at its cap: %d Retry-After %q %s, want 429 %s with Retry-After 7",
				req.method, req.path, resp.StatusCode, resp.Header.Get("Retry-After"), body, req.code)
		}
	}
}
