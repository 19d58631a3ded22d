package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/worker"
)

// TestLastEventIDOutOfRange: ids of the right shape that Redis refuses (a
// part beyond 64 bits, or the maximum id, which nothing can follow) are a
// 400 naming the header or parameter, on the job and the batch event
// streams, not Redis' refusal as a 500. (Ended streams: a running one
// answers a future id with a snapshot without reading after it.)
func TestLastEventIDOutOfRange(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startBatchWorker(t, echoRunner, worker.Config{})
	id := b.submit(t, "q")
	eventually(t, "the job to end", func() bool { return b.jobStatus(t, id).Terminal() })
	v := b.upload(t, jsonl(`{"question":"q"}`), "application/x-ndjson", nil)
	b.waitBatch(t, v.ID, "completed")
	for _, path := range []string{eventsPath(id), "/v1/batches/" + v.ID + "/events"} {
		for _, last := range []string{
			"18446744073709551615-18446744073709551615", "18446744073709551616-0", "99999999999999999999-0",
			"1-18446744073709551616", "99999999999999999999",
		} {
			b.wantV1Error(t, "GET", path, http.Header{"Last-Event-ID": {last}}, 400, "Last-Event-ID")
			b.wantV1Error(t, "GET", path+"?last_event_id="+url.QueryEscape(last), nil, 400, "last_event_id")
		}
		// The largest ids Redis can read after are fine: nothing follows.
		for _, last := range []string{"18446744073709551615-18446744073709551614", "18446744073709551615", "99999999999999-0"} {
			if resp, body := b.do(t, "GET", path, nil, http.Header{"Last-Event-ID": {last}}); resp.StatusCode != 200 || len(body) != 0 {
				t.Errorf("%s, Last-Event-ID %s: %d %q, want 200 and nothing", path, last, resp.StatusCode, body)
			}
		}
	}
}

// wantV1Error checks that a request gets status with a /v1 error body naming
// field.
func (b *bundle) wantV1Error(t *testing.T, method, path string, hdr http.Header, status int, field string) v1Error {
	t.Helper()
	resp, body := b.do(t, method, path, nil, hdr)
	if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("%s %s (%v): %d %.300s, want %d", method, path, hdr, resp.StatusCode, body, status)
		return v1Error{}
	}
	got := decode[v1Error](t, body)
	if got.Error.Field != field || got.Error.Message == "" {
		t.Errorf("%s %s (%v): %s, want field %q", method, path, hdr, body, field)
	}
	return got
}
