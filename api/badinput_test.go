package api_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/internal/testwait"
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
	testwait.Until(t, "the job to end", func() bool { return b.jobStatus(t, id).Terminal() })
	v := b.upload(t, jsonl(`{"question":"q"}`), "application/x-ndjson", nil)
	b.waitBatch(t, v.ID, "", "completed")
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

// TestTrailingSlashGoesThroughTheMiddleware: a path with a stray slash gets
// the route family's JSON 404 with the security headers and a request id,
// like any unknown path, rather than gin's redirect written before every
// middleware.
func TestTrailingSlashGoesThroughTheMiddleware(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	noFollow := *b.http
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, r := range []struct{ method, path, want string }{
		{"GET", "/v1/jobs/", `{"error":{"code":"not_found","message":"no such endpoint"}}`},
		{"POST", "/v1/jobs/", `{"error":{"code":"not_found","message":"no such endpoint"}}`},
		{"GET", "/v1/batches/", `{"error":{"code":"not_found","message":"no such endpoint"}}`},
		{"GET", "/health/", `{"detail":"Not Found"}`},
		{"POST", "/predict/", `{"detail":"Not Found"}`},
	} {
		req, err := http.NewRequest(r.method, b.url+r.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || strings.TrimSpace(string(body)) != r.want || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s %q, want 404 %s", r.method, r.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, r.want)
		}
		if resp.Header.Get("X-Request-ID") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s %s: headers %v", r.method, r.path, resp.Header)
		}
	}
	// The dashboard's root without its slash still leads to it, through the
	// middleware.
	resp, err := noFollow.Get(b.url + "/monitoring")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/monitoring/" || resp.Header.Get("X-Request-ID") == "" {
		t.Errorf("GET /monitoring: %d Location %q, headers %v", resp.StatusCode, resp.Header.Get("Location"), resp.Header)
	}
}
