package api_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/redis/go-redis/v9"
)

// TestHeadAnswersLikeGet: HEAD on a GET route gets the status and headers
// the GET gets, errors included, and no body; on a stream or a ?wait= route
// it gets the headers at once, without a lease or a wait.
func TestHeadAnswersLikeGet(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{MaxStreamsPerKey: 1, MaxWaitsPerKey: 1})})
	running, _ := runningAndEndedBatches(t, b)
	id := b.submitAs(t, aliceKey, "slow q") // the worker holds it until the test ends
	testwait.Until(t, "the job to start", func() bool { return b.jobStatus(t, id) == "running" })

	// Plain routes, and errors: the GET's status, type and length.
	for _, c := range []struct {
		path string
		hdr  http.Header
	}{
		{"/v1/jobs/" + id, bearer(aliceKey)},
		{"/health", nil},
		{"/v1/jobs/" + unknownJob, bearer(aliceKey)},
		{"/v1/jobs/" + id, nil},
		{"/no/such/path", bearer(aliceKey)},
	} {
		get, body := b.do(t, "GET", c.path, nil, c.hdr)
		head, headBody := b.do(t, "HEAD", c.path, nil, c.hdr)
		if head.StatusCode != get.StatusCode || len(headBody) != 0 ||
			head.Header.Get("Content-Type") != get.Header.Get("Content-Type") ||
			head.Header.Get("Content-Length") != strconv.Itoa(len(body)) ||
			head.Header.Get("WWW-Authenticate") != get.Header.Get("WWW-Authenticate") {
			t.Errorf("HEAD %s: %d %v %q; GET: %d %v (%d bytes)", c.path, head.StatusCode, head.Header, headBody, get.StatusCode, get.Header, len(body))
		}
	}
	if head, _ := b.do(t, "HEAD", "/v1/jobs", nil, bearer(aliceKey)); head.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("HEAD on a POST route: %d, want 405", head.StatusCode)
	}

	// Streams and waits: alice holds her one stream; HEAD neither needs nor
	// takes a lease, and answers without waiting (the waits are longer than
	// the test's patience).
	ctx := context.Background()
	hold := b.openSSE(t, "GET", "/v1/jobs/"+id+"/events", nil, bearer(aliceKey))
	if _, ok := hold.next(t); !ok {
		t.Fatal("alice's stream ended")
	}
	if err := b.db.Client.ZAdd(ctx, "qa:waits:alice", redis.Z{Score: 1, Member: "expired"}).Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, contentType string }{
		{"/v1/jobs/" + id + "/events", "text/event-stream"},
		{"/v1/batches/" + running + "/events", "text/event-stream"},
		{"/v1/batches/" + running + "/results?wait=true", "application/x-ndjson"},
		{"/v1/jobs/" + id + "?wait=60", "application/json"},
	} {
		head, body := b.do(t, "HEAD", c.path, nil, bearer(aliceKey))
		if head.StatusCode != http.StatusOK || head.Header.Get("Content-Type") != c.contentType || len(body) != 0 {
			t.Errorf("HEAD %s: %d %q %q", c.path, head.StatusCode, head.Header.Get("Content-Type"), body)
		}
	}
	if n := b.leases(t, "qa:streams:alice"); n != 1 {
		t.Errorf("stream leases after HEADs: %d, want alice's one stream", n)
	}
	if score, err := b.db.Client.ZScore(ctx, "qa:waits:alice", "expired").Result(); err != nil || score != 1 {
		t.Errorf("HEAD ?wait= touched the wait leases: %v %v", score, err)
	}
	if head, _ := b.do(t, "HEAD", "/v1/jobs/"+unknownJob+"/events", nil, bearer(aliceKey)); head.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD on the events of a missing job: %d, want 404", head.StatusCode)
	}
}
