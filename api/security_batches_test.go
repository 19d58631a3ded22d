package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/api"
)

// TestBatchesAreVisibleOnlyToTheirOwner: another key gets the same 404 as
// for a batch that does not exist, on every batch route, and does not see it
// listed; the owner's routes work.
func TestBatchesAreVisibleOnlyToTheirOwner(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	v := b.upload(t, jsonl(`{"custom_id":"x","question":"alice's batch question"}`), "application/x-ndjson", bearer(aliceKey))
	missing := "batch_" + strings.Repeat("0", len(strings.TrimPrefix(v.ID, "batch_")))
	routes := []struct{ method, suffix string }{
		{"GET", ""}, {"GET", "/results"}, {"GET", "/events"}, {"POST", "/cancel"}, {"POST", "/retry"}, {"DELETE", ""},
	}
	for _, r := range routes {
		missResp, missBody := b.do(t, r.method, "/v1/batches/"+missing+r.suffix, nil, bearer(bobKey))
		resp, body := b.do(t, r.method, "/v1/batches/"+v.ID+r.suffix, nil, bearer(bobKey))
		if resp.StatusCode != http.StatusNotFound || missResp.StatusCode != http.StatusNotFound || string(body) != string(missBody) {
			t.Errorf("bob %s /v1/batches/{alice's}%s: %d %s; for a missing batch: %d %s", r.method, r.suffix, resp.StatusCode, body, missResp.StatusCode, missBody)
		}
	}
	if _, body := b.do(t, "GET", "/v1/batches", nil, bearer(bobKey)); strings.Contains(string(body), v.ID) {
		t.Errorf("bob's list shows alice's batch: %s", body)
	}
	if resp, body := b.do(t, "GET", "/v1/batches/"+v.ID, nil, bearer(aliceKey)); resp.StatusCode != http.StatusOK {
		t.Errorf("alice GET her batch: %d %s", resp.StatusCode, body)
	}
	if _, body := b.do(t, "GET", "/v1/batches", nil, bearer(aliceKey)); !strings.Contains(string(body), v.ID) {
		t.Errorf("alice's list lacks her batch: %s", body)
	}
}

// TestBatchesUseTheKeysLimits: batch uploads spend the token budget like jobs, and a
// batch's event stream counts against the key's open streams.
func TestBatchesUseTheKeysLimits(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{TokenBudgetPerDay: 10, MaxStreamsPerKey: 1})})
	v := b.upload(t, jsonl(`{"question":"q"}`), "application/x-ndjson", bearer(aliceKey))
	s := b.openSSE(t, "GET", "/v1/batches/"+v.ID+"/events", nil, bearer(aliceKey))
	if _, ok := s.next(t); !ok {
		t.Fatal("batch stream ended")
	}
	if got := b.streamStatus(t, "/v1/batches/"+v.ID+"/events", bearer(aliceKey)); got != http.StatusTooManyRequests {
		t.Errorf("a second stream: %d, want 429", got)
	}
	s.close()

	id := b.submitAs(t, aliceKey, "q")
	complete(t, b.start(t, id), "a") // 15 tokens, over the budget of 10
	resp, body := b.do(t, "POST", "/v1/batches", jsonl(`{"question":"q"}`), with(bearer(aliceKey), "Content-Type", "application/x-ndjson"))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"code":"token_budget_exceeded"`) {
		t.Errorf("batch upload over budget: %d %s", resp.StatusCode, body)
	}
}
