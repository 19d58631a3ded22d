package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// The test's secrets: none of them may ever reach a log line or an answer.
const (
	aliceKey = "alice-secret-key-0f3c9a51"
	bobKey   = "bob-secret-key-77d1e2c4"
	opsKey   = "ops-admin-key-5b8e41aa"
	wrongKey = "wrong-secret-key-d41d8cd9"
)

// unknownJob is a well-formed id that names no job.
const unknownJob = "0123456789abcdef0123456789abcdef"

func mustKeys(t *testing.T, s string) config.APIKeys {
	t.Helper()
	k, err := config.ParseAPIKeys(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// secured is cfg with alice and bob as API keys and ops as the admin key
// (bob's given as a digest, as API_KEYS allows).
func secured(t *testing.T, cfg api.Config) api.Config {
	t.Helper()
	cfg.APIKeys = mustKeys(t, "alice:"+aliceKey+",bob:sha256:"+sha256Hex(bobKey))
	cfg.AdminAPIKeys = mustKeys(t, "ops:"+opsKey)
	return cfg
}

func bearer(key string) http.Header { return http.Header{"Authorization": {"Bearer " + key}} }

func basic(user, password string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))}}
}

// with adds header pairs to h.
func with(h http.Header, kv ...string) http.Header {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// submitAs posts a job with key and returns its id.
func (b *bundle) submitAs(t *testing.T, key, question string) string {
	t.Helper()
	resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": question}, bearer(key))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit as %.5s…: %d %s", key, resp.StatusCode, body)
	}
	return decode[submitted](t, body).ID
}

// TestAuthRequired: with API_KEYS set, every endpoint but the public ones
// answers 401 with a Bearer challenge, in its family's error shape, to no
// key, a wrong key, another scheme or a malformed header.
func TestAuthRequired(t *testing.T) {
	t.Parallel()
	// It fails ~90 times from one address: above the default failure limit.
	b := setup(t, options{api: secured(t, api.Config{AuthFailuresPerMinute: 1000})})
	id := b.submitAs(t, aliceKey, "mine")
	endpoints := []struct {
		method, path string
		body         any
		seed         bool
	}{
		{"POST", "/v1/jobs", map[string]any{"question": "q"}, false},
		{"GET", "/v1/jobs/" + id, nil, false},
		{"GET", "/v1/jobs/" + id + "/events", nil, false},
		{"POST", "/v1/jobs/" + id + "/cancel", nil, false},
		{"DELETE", "/v1/jobs/" + id, nil, false},
		{"GET", "/v1/batches", nil, false},
		{"GET", "/v1/no-such-endpoint", nil, false},
		{"POST", "/predict", map[string]any{"question": "q"}, true},
		{"POST", "/predict/stream", map[string]any{"question": "q"}, true},
		{"POST", "/batch", []any{map[string]any{"question": "q"}}, true},
		{"GET", "/no-such-endpoint", nil, true},
	}
	creds := map[string]http.Header{
		"no key":       nil,
		"wrong key":    bearer(wrongKey),
		"admin key":    bearer(opsKey), // admin keys open operator pages only
		"basic":        basic("alice", aliceKey),
		"no token":     {"Authorization": {"Bearer "}},
		"two tokens":   {"Authorization": {"Bearer " + aliceKey + " " + aliceKey}},
		"bare key":     {"Authorization": {aliceKey}},
		"key as query": nil,
	}
	for _, ep := range endpoints {
		for name, hdr := range creds {
			path := ep.path
			if name == "key as query" {
				path += "?api_key=" + aliceKey
			}
			resp, body := b.do(t, ep.method, path, ep.body, hdr)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s, %s: %d %s, want 401", ep.method, ep.path, name, resp.StatusCode, body)
				continue
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="qaqueue"` {
				t.Errorf("%s %s, %s: WWW-Authenticate %q", ep.method, ep.path, name, got)
			}
			want := `{"error":{"code":"unauthorized","message":"missing or invalid API key: send Authorization: Bearer <key>"}}` + "\n"
			if ep.seed {
				want = `{"detail":"Not authenticated"}` + "\n"
			}
			if string(body) != want {
				t.Errorf("%s %s, %s: body %s, want %s", ep.method, ep.path, name, body, want)
			}
		}
	}
	// Nothing was done on the job by those requests.
	if st := b.jobStatus(t, id); st != jobs.StatusQueued {
		t.Errorf("job status after refused requests: %s", st)
	}
	// The public paths need no key (/, /docs and /openapi.json may not be
	// routed in this build: they must not ask for a key either).
	for _, path := range []string{"/health", "/livez", "/readyz"} {
		if resp, body := b.do(t, "GET", path, nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a key: %d %s", path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/", "/docs", "/openapi.json", "/static/app.js"} {
		if resp, body := b.do(t, "GET", path, nil, nil); resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("GET %s without a key: 401 %s", path, body)
		}
	}
	// The right key, in any case of the scheme.
	for _, hdr := range []http.Header{bearer(aliceKey), {"Authorization": {"bearer  " + aliceKey}}} {
		if resp, body := b.do(t, "GET", "/v1/jobs/"+id, nil, hdr); resp.StatusCode != http.StatusOK {
			t.Errorf("GET with %q: %d %s", hdr.Get("Authorization")[:7], resp.StatusCode, body)
		}
	}
	// A hashed key works like a plain one.
	b.submitAs(t, bobKey, "bob's")
}

// TestJobsAreVisibleOnlyToTheirOwner: another key gets the same 404 as for a
// job that does not exist, on every route, and changes nothing.
func TestJobsAreVisibleOnlyToTheirOwner(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	id := b.submitAs(t, aliceKey, "alice's secret question")
	routes := []struct{ method, suffix string }{
		{"GET", ""}, {"GET", "?wait=1s"}, {"GET", "/events"}, {"GET", "/events?last_event_id=0"},
		{"POST", "/cancel"}, {"DELETE", ""},
	}
	for _, r := range routes {
		missResp, missBody := b.do(t, r.method, "/v1/jobs/"+unknownJob+r.suffix, nil, bearer(bobKey))
		resp, body := b.do(t, r.method, "/v1/jobs/"+id+r.suffix, nil, bearer(bobKey))
		if resp.StatusCode != http.StatusNotFound || missResp.StatusCode != http.StatusNotFound || string(body) != string(missBody) {
			t.Errorf("bob %s /v1/jobs/{alice's}%s: %d %s; for a missing job: %d %s", r.method, r.suffix, resp.StatusCode, body, missResp.StatusCode, missBody)
		}
		if strings.Contains(string(body), "secret question") {
			t.Errorf("bob %s %s sees the question: %s", r.method, r.suffix, body)
		}
	}
	if st := b.jobStatus(t, id); st != jobs.StatusQueued {
		t.Fatalf("alice's job after bob's tries: %s", st)
	}
	// Alice sees, follows, cancels and deletes it.
	if resp, body := b.do(t, "GET", "/v1/jobs/"+id, nil, bearer(aliceKey)); resp.StatusCode != 200 {
		t.Fatalf("alice GET: %d %s", resp.StatusCode, body)
	}
	s := b.openSSE(t, "GET", "/v1/jobs/"+id+"/events", nil, bearer(aliceKey))
	if f, ok := s.next(t); !ok || f.Event == "" {
		t.Fatalf("alice's stream: %+v %v", f, ok)
	}
	s.close()
	if resp, body := b.do(t, "POST", "/v1/jobs/"+id+"/cancel", nil, bearer(aliceKey)); resp.StatusCode != 200 {
		t.Fatalf("alice cancel: %d %s", resp.StatusCode, body)
	}
	if resp, body := b.do(t, "DELETE", "/v1/jobs/"+id, nil, bearer(aliceKey)); resp.StatusCode != 204 {
		t.Fatalf("alice delete: %d %s", resp.StatusCode, body)
	}
}

// TestIdempotencyKeysArePerKey: the same Idempotency-Key from two keys names
// two jobs; each key replays its own.
func TestIdempotencyKeysArePerKey(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	post := func(key, question string) (int, string) {
		resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": question}, with(bearer(key), "Idempotency-Key", "shared-key-1"))
		return resp.StatusCode, decode[submitted](t, body).ID
	}
	st1, alice := post(aliceKey, "alice's question")
	st2, bob := post(bobKey, "bob's different question")
	st3, again := post(aliceKey, "alice's question")
	if st1 != 202 || st2 != 202 || st3 != 202 || alice == bob || again != alice {
		t.Fatalf("alice %d %s, bob %d %s, alice again %d %s", st1, alice, st2, bob, st3, again)
	}
}

// TestMetricsNeedAnAdminKey: /metrics wants an admin key (Bearer for a
// scraper, or Basic), unless MetricsPublic.
func TestMetricsNeedAnAdminKey(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	for name, hdr := range map[string]http.Header{"no key": nil, "wrong": bearer(wrongKey)} {
		resp, body := b.do(t, "GET", "/metrics", nil, hdr)
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="qaqueue"` || string(body) != `{"detail":"Not authenticated"}`+"\n" {
			t.Errorf("/metrics with %s: %d %q %s", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
	// An API key is a key, just not the right kind: 403 says which is.
	for name, hdr := range map[string]http.Header{"bearer": bearer(aliceKey), "basic": basic("alice", aliceKey)} {
		resp, body := b.do(t, "GET", "/metrics", nil, hdr)
		if resp.StatusCode != 403 || string(body) != `{"detail":"/metrics needs an admin key (ADMIN_API_KEYS): an API key does not open it"}`+"\n" {
			t.Errorf("/metrics with an API key (%s): %d %s", name, resp.StatusCode, body)
		}
	}
	for name, hdr := range map[string]http.Header{"bearer": bearer(opsKey), "basic": basic("prometheus", opsKey)} {
		resp, body := b.do(t, "GET", "/metrics", nil, hdr)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "qa_http_requests_total") {
			t.Errorf("/metrics with the admin key (%s): %d %.200s", name, resp.StatusCode, body)
		}
	}

	pub := setup(t, options{api: secured(t, api.Config{MetricsPublic: true})})
	if resp, body := pub.do(t, "GET", "/metrics", nil, nil); resp.StatusCode != 200 {
		t.Errorf("public /metrics: %d %.200s", resp.StatusCode, body)
	}
	// With API keys but no admin keys, nobody gets in.
	cfg := secured(t, api.Config{})
	cfg.AdminAPIKeys = nil
	closed := setup(t, options{api: cfg})
	if resp, _ := closed.do(t, "GET", "/metrics", nil, nil); resp.StatusCode != 401 {
		t.Errorf("/metrics without admin keys configured: %d", resp.StatusCode)
	}
	if resp, _ := closed.do(t, "GET", "/metrics", nil, bearer(aliceKey)); resp.StatusCode != 403 {
		t.Errorf("/metrics with an API key, without admin keys configured: %d", resp.StatusCode)
	}
}

var scriptRE = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

// TestDashboardNeedsAnAdminKey: /monitoring/ asks a browser for Basic auth,
// takes the admin key as the password (any user name) or as Bearer, refuses
// API keys, serves a CSP that allows exactly its inline scripts, and is
// read-only.
func TestDashboardNeedsAnAdminKey(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	b.submitAs(t, aliceKey, "a question for the dashboard")
	for name, hdr := range map[string]http.Header{
		"no credentials": nil, "an API key": basic("alice", aliceKey), "API key as bearer": bearer(aliceKey),
		"wrong password": basic("ops", wrongKey), "the key as user name": basic(opsKey, ""),
	} {
		for _, path := range []string{"/monitoring/", "/monitoring/api/queues", "/monitoring/static/js/main.5adda2da.chunk.js"} {
			resp, body := b.do(t, "GET", path, nil, hdr)
			if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="qaqueue monitoring", charset="UTF-8"` {
				t.Errorf("%s with %s: %d %q", path, name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			if strings.Contains(string(body), "Asynq") || strings.Contains(string(body), "interactive") {
				t.Errorf("%s with %s leaks the dashboard: %.200s", path, name, body)
			}
		}
	}
	for _, user := range []string{"ops", "anyone", ""} {
		resp, body := b.do(t, "GET", "/monitoring/", nil, basic(user, opsKey))
		if resp.StatusCode != 200 || !strings.Contains(string(body), "Asynq - Monitoring") {
			t.Fatalf("dashboard as %q: %d %.200s", user, resp.StatusCode, body)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		scriptSrc := directive(csp, "script-src")
		scripts := scriptRE.FindAllStringSubmatch(string(body), -1)
		if len(scripts) == 0 || strings.Contains(scriptSrc, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("dashboard CSP %q for %d inline scripts", csp, len(scripts))
		}
		for _, s := range scripts {
			if h := "'sha256-" + sha256Base64(s[1]) + "'"; !strings.Contains(scriptSrc, h) {
				t.Errorf("CSP %q lacks the hash %s of an inline script", csp, h)
			}
		}
	}
	resp, body := b.do(t, "GET", "/monitoring/api/queues/interactive/pending_tasks", nil, bearer(opsKey))
	if resp.StatusCode != 200 || !strings.Contains(string(body), "a question for the dashboard") {
		t.Fatalf("dashboard API with Bearer: %d %.300s", resp.StatusCode, body)
	}
	// Read-only: writes are refused even to an admin on the same origin.
	resp, _ = b.do(t, "POST", "/monitoring/api/queues/interactive:pause", nil, with(basic("ops", opsKey), "Sec-Fetch-Site", "same-origin"))
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("write in read-only mode: %d", resp.StatusCode)
	}
}

// TestWritableDashboardRefusesCrossSiteWrites: with writes on, a cross-site
// request that carries the browser's Basic credentials cannot change
// anything (CSRF); a same-origin one can.
func TestWritableDashboardRefusesCrossSiteWrites(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{MonitoringWritable: true})})
	b.submitAs(t, aliceKey, "q")
	paused := func() bool {
		t.Helper()
		_, body := b.do(t, "GET", "/monitoring/api/queues/interactive", nil, basic("ops", opsKey))
		return strings.Contains(string(body), `"paused":true`)
	}
	const pause = "/monitoring/api/queues/interactive:pause"
	for name, hdr := range map[string]http.Header{
		"cross-site fetch":  with(basic("ops", opsKey), "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"),
		"same-site fetch":   with(basic("ops", opsKey), "Sec-Fetch-Site", "same-site", "Origin", "https://evil.example.test"),
		"old browser, form": with(basic("ops", opsKey), "Origin", "https://evil.example"),
	} {
		resp, body := b.do(t, "POST", pause, nil, hdr)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", name, resp.StatusCode, body)
		}
	}
	if paused() {
		t.Fatal("a cross-site request paused the queue")
	}
	if resp, body := b.do(t, "POST", pause, nil, with(basic("ops", opsKey), "Sec-Fetch-Site", "same-origin")); resp.StatusCode != 200 && resp.StatusCode != 204 {
		t.Fatalf("same-origin pause: %d %s", resp.StatusCode, body)
	}
	if !paused() {
		t.Fatal("the same-origin pause did not pause the queue")
	}
	// Without credentials, even a same-origin write is refused.
	if resp, _ := b.do(t, "POST", "/monitoring/api/queues/interactive:resume", nil, http.Header{"Sec-Fetch-Site": {"same-origin"}}); resp.StatusCode != 401 {
		t.Errorf("anonymous write: %d", resp.StatusCode)
	}
}

// TestCORS: off by default; with CORS_ORIGINS an allowed origin's preflight
// gets the methods and headers a client needs and its answers name it (never
// "*") with credentials; other origins get no CORS headers.
func TestCORS(t *testing.T) {
	t.Parallel()
	const app, evil = "https://app.example.com", "https://evil.example.com"
	preflight := func(b *bundle, origin string) *http.Response {
		t.Helper()
		resp, _ := b.do(t, "OPTIONS", "/v1/jobs", nil, http.Header{
			"Origin": {origin}, "Access-Control-Request-Method": {"POST"},
			"Access-Control-Request-Headers": {"authorization,content-type,idempotency-key"},
		})
		return resp
	}

	off := setup(t, options{api: secured(t, api.Config{})})
	if resp := preflight(off, app); resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.StatusCode/100 == 2 {
		t.Errorf("CORS off: preflight %d with %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := off.do(t, "GET", "/v1/jobs/"+unknownJob, nil, with(bearer(aliceKey), "Origin", app)); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS off: answer allows %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}

	b := setup(t, options{api: secured(t, api.Config{CORSOrigins: []string{app, "http://localhost:3000"}})})
	resp := preflight(b, app)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("allowed preflight: %d", resp.StatusCode)
	}
	h := resp.Header
	if h.Get("Access-Control-Allow-Origin") != app || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("allowed preflight: %v", h)
	}
	for _, want := range []string{"Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"} {
		if !strings.Contains(h.Get("Access-Control-Allow-Headers"), want) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
		}
	}
	for _, want := range []string{"GET", "POST", "DELETE"} {
		if !strings.Contains(h.Get("Access-Control-Allow-Methods"), want) {
			t.Errorf("Access-Control-Allow-Methods %q lacks %s", h.Get("Access-Control-Allow-Methods"), want)
		}
	}
	if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Errorf("preflight Vary %v", h.Values("Vary"))
	}
	for _, origin := range []string{evil, "null", app + ".evil.com", "http://app.example.com"} {
		resp := preflight(b, origin)
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight from %s: %d %v", origin, resp.StatusCode, resp.Header)
		}
	}
	// The request itself: the allowed origin may read the answer and its
	// Location and Retry-After; a 401 is readable too, so the page can say why.
	resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": "q"}, with(bearer(aliceKey), "Origin", app))
	if resp.StatusCode != 202 || resp.Header.Get("Access-Control-Allow-Origin") != app || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("cross-origin submit: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	for _, want := range []string{"Location", "Retry-After"} {
		if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), want) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", resp.Header.Get("Access-Control-Expose-Headers"), want)
		}
	}
	if resp, _ := b.do(t, "GET", "/v1/jobs/"+unknownJob, nil, http.Header{"Origin": {app}}); resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != app {
		t.Errorf("cross-origin 401: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := b.do(t, "GET", "/v1/jobs/"+unknownJob, nil, with(bearer(aliceKey), "Origin", evil)); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("answer to %s allows %q", evil, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	// Never "*", and the operator pages are not shared cross-origin.
	if resp, _ := b.do(t, "GET", "/metrics", nil, with(bearer(opsKey), "Origin", app)); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("/metrics shared with %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if _, err := api.New(api.Config{CORSOrigins: []string{"*"}}, api.Deps{}); err == nil || !strings.Contains(err.Error(), "CORSOrigins") {
		t.Errorf(`CORSOrigins ["*"]: %v`, err)
	}
}

// TestStreamLimitPerKey: a key holding its limit of open streams gets 429
// with Retry-After for another; other keys are not affected; closing a
// stream frees its slot.
func TestStreamLimitPerKey(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{MaxStreamsPerKey: 1})})
	id := b.submitAs(t, aliceKey, "q")
	s := b.openSSE(t, "GET", "/v1/jobs/"+id+"/events", nil, bearer(aliceKey))
	if _, ok := s.next(t); !ok {
		t.Fatal("first stream ended")
	}
	for _, req := range []struct {
		method, path string
		body         any
		want         string
	}{
		{"GET", "/v1/jobs/" + id + "/events", nil, `"code":"too_many_streams"`},
		{"POST", "/predict/stream", map[string]any{"question": "q"}, `{"detail":"this key already holds 1 open streams`},
	} {
		resp, body := b.do(t, req.method, req.path, req.body, bearer(aliceKey))
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), req.want) {
			t.Errorf("%s %s over the limit: %d %q %s", req.method, req.path, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	bobs := b.submitAs(t, bobKey, "q")
	b.openSSE(t, "GET", "/v1/jobs/"+bobs+"/events", nil, bearer(bobKey))
	s.close()
	testwait.Until(t, "alice's slot to be freed", func() bool {
		return b.streamStatus(t, "/v1/jobs/"+id+"/events", bearer(aliceKey)) == http.StatusOK
	})
}

// TestStreamLimitIsSharedAcrossReplicas: a key's open streams count on every
// API replica (leases in Redis); a stream closed on one frees a slot on the
// other; the lease of a stream whose process died stops counting once it
// runs out, while a live one still counts.
func TestStreamLimitIsSharedAcrossReplicas(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	cfg := secured(t, api.Config{MaxStreamsPerKey: 1})
	one := setup(t, options{db: db, api: cfg})
	two := setup(t, options{db: db, api: cfg})
	id := one.submitAs(t, aliceKey, "q")
	path := "/v1/jobs/" + id + "/events"
	s := one.openSSE(t, "GET", path, nil, bearer(aliceKey))
	if _, ok := s.next(t); !ok {
		t.Fatal("first stream ended")
	}
	resp, body := two.do(t, "GET", path, nil, bearer(aliceKey))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"code":"too_many_streams"`) {
		t.Fatalf("second stream, on the other replica: %d %s", resp.StatusCode, body)
	}
	s.close()
	testwait.Until(t, "the slot freed on one to be usable on two", func() bool {
		return two.streamStatus(t, path, bearer(aliceKey)) == http.StatusOK
	})

	// Leases left by a process that died: one that has run out no longer
	// counts, one still running does.
	ctx := context.Background()
	leases := "qa:streams:bob"
	bobs := one.submitAs(t, bobKey, "q")
	if err := db.Client.ZAdd(ctx, leases, redis.Z{Score: 1, Member: "dead"}).Err(); err != nil {
		t.Fatal(err)
	}
	if got := two.streamStatus(t, "/v1/jobs/"+bobs+"/events", bearer(bobKey)); got != http.StatusOK {
		t.Fatalf("a run-out lease still counts: %d", got)
	}
	far := float64(time.Now().Add(time.Hour).UnixMilli())
	if err := db.Client.ZAdd(ctx, leases, redis.Z{Score: far, Member: "alive"}).Err(); err != nil {
		t.Fatal(err)
	}
	if got := two.streamStatus(t, "/v1/jobs/"+bobs+"/events", bearer(bobKey)); got != http.StatusTooManyRequests {
		t.Fatalf("a live lease does not count: %d", got)
	}
}

// TestRateLimitIsSharedAcrossReplicas: two API servers on one Redis hold a
// key to one bucket: after the burst, either answers 429 with Retry-After;
// another key has its own bucket.
func TestRateLimitIsSharedAcrossReplicas(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	// 0.01 rps refills one request per 100s: nothing refills during the test.
	cfg := secured(t, api.Config{RateLimitRPS: 0.01, RateLimitBurst: 3})
	one := setup(t, options{db: db, api: cfg})
	two := setup(t, options{db: db, api: cfg})
	get := func(b *bundle, key string) (*http.Response, []byte) {
		return b.do(t, "GET", "/v1/jobs/"+unknownJob, nil, bearer(key))
	}
	for i, b := range []*bundle{one, two, one} {
		if resp, body := get(b, aliceKey); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("request %d within the burst: %d %s", i+1, resp.StatusCode, body)
		}
	}
	for _, b := range []*bundle{two, one} {
		resp, body := get(b, aliceKey)
		ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusTooManyRequests || err != nil || ra < 1 || ra > 100 || !strings.Contains(string(body), `"code":"rate_limited"`) {
			t.Errorf("over the shared burst: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	resp, body := one.do(t, "POST", "/predict", map[string]any{"question": "q"}, bearer(aliceKey))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.HasPrefix(string(body), `{"detail":"rate limit of 0.01 requests per second (burst 3) exceeded`) {
		t.Errorf("seed endpoint over the limit: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(two, bobKey); resp.StatusCode != http.StatusNotFound {
		t.Errorf("bob, with his own bucket: %d %s", resp.StatusCode, body)
	}
	// Probes are never limited.
	if resp, _ := one.do(t, "GET", "/livez", nil, nil); resp.StatusCode != 200 {
		t.Errorf("/livez: %d", resp.StatusCode)
	}
}

// TestTokenBudgetPerDay: once a key's completed jobs have used its daily
// budget, the routes that create work answer 429 naming the budget, with
// Retry-After until midnight UTC; reads go on and other keys are not
// affected.
func TestTokenBudgetPerDay(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{TokenBudgetPerDay: 20})})
	for range 2 { // testUsage is 15 tokens: 15 < 20, then 30
		id := b.submitAs(t, aliceKey, "q")
		complete(t, b.start(t, id), "a")
	}
	for _, req := range []struct {
		path string
		body any
		want string
	}{
		{"/v1/jobs", map[string]any{"question": "q"}, `{"error":{"code":"token_budget_exceeded","message":"daily token budget exceeded: this key has used 30 of its 20 tokens (TOKEN_BUDGET_PER_DAY) today`},
		{"/predict", map[string]any{"question": "q"}, `{"detail":"daily token budget exceeded`},
		{"/predict/stream", map[string]any{"question": "q"}, `{"detail":"daily token budget exceeded`},
		{"/batch", []any{map[string]any{"question": "q"}}, `{"detail":"daily token budget exceeded`},
	} {
		resp, body := b.do(t, "POST", req.path, req.body, bearer(aliceKey))
		ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusTooManyRequests || err != nil || ra < 1 || ra > 86400 || !strings.HasPrefix(string(body), req.want) {
			t.Errorf("POST %s over budget: %d Retry-After %q %s", req.path, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if resp, body := b.do(t, "GET", "/v1/jobs/"+unknownJob, nil, bearer(aliceKey)); resp.StatusCode != 404 {
		t.Errorf("a read over budget: %d %s", resp.StatusCode, body)
	}
	b.submitAs(t, bobKey, "bob has his own budget")
}

// TestSecurityHeaders: every answer carries nosniff, no-referrer, DENY and a
// CSP; everything but the dashboard (and the API's HTML pages) gets the
// policy that allows nothing.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	id := b.submitAs(t, aliceKey, "q")
	check := func(what string, h http.Header) {
		t.Helper()
		for k, want := range map[string]string{
			"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", what, k, got, want)
			}
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", what, csp)
		}
	}
	for _, r := range []struct {
		method, path string
		hdr          http.Header
	}{
		{"GET", "/health", nil}, {"GET", "/readyz", nil}, {"GET", "/v1/jobs/" + id, bearer(aliceKey)},
		{"GET", "/v1/jobs/" + id, nil}, {"GET", "/v1/jobs/" + unknownJob, bearer(aliceKey)},
		{"POST", "/v1/jobs", bearer(aliceKey)}, {"GET", "/nope", bearer(aliceKey)},
		{"GET", "/metrics", bearer(opsKey)}, {"GET", "/metrics", nil},
		{"GET", "/monitoring/", basic("ops", opsKey)}, {"GET", "/monitoring/", nil},
		{"GET", "/monitoring/api/queues", bearer(opsKey)},
	} {
		resp, _ := b.do(t, r.method, r.path, nil, r.hdr)
		check(r.method+" "+r.path, resp.Header)
		if csp := resp.Header.Get("Content-Security-Policy"); resp.Request.URL.Path != "/monitoring/" && !strings.HasPrefix(csp, "default-src 'none'") {
			t.Errorf("%s %s: CSP %q", r.method, r.path, csp)
		}
	}
	s := b.openSSE(t, "GET", "/v1/jobs/"+id+"/events", nil, bearer(aliceKey))
	check("event stream", s.resp.Header)
}

// TestLogsHoldNoSecrets runs requests with keys (right, wrong, Basic), 4xx
// and 5xx answers, and scans the log for the keys, the headers and the
// question text.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	db := redistest.NewServer(t)
	b := setup(t, options{db: db, api: secured(t, api.Config{RedisTimeout: 2 * time.Second})})
	const question = "my-private-question-text-8c1f"
	id := b.submitAs(t, aliceKey, question)
	b.do(t, "GET", "/v1/jobs/"+id, nil, bearer(aliceKey))
	b.do(t, "GET", "/v1/jobs/"+id, nil, bearer(wrongKey))
	b.do(t, "GET", "/v1/jobs/"+id, nil, bearer(bobKey))
	b.do(t, "GET", "/v1/jobs/"+id, nil, basic("alice", aliceKey))
	b.do(t, "POST", "/v1/jobs", map[string]any{"question": question, "extra": question}, bearer(aliceKey))
	b.do(t, "POST", "/predict", map[string]any{"question": strings.Repeat(question, 1000)}, bearer(aliceKey))
	b.do(t, "POST", "/v1/jobs", `{"question": "`+question, bearer(aliceKey))
	b.do(t, "GET", "/monitoring/", nil, basic("ops", opsKey))
	b.do(t, "GET", "/monitoring/", nil, basic("ops", wrongKey))
	b.do(t, "GET", "/metrics", nil, bearer(opsKey))
	b.do(t, "GET", "/v1/jobs/"+id+"?api_key="+wrongKey, nil, bearer(wrongKey))

	db.Server.Stop() // 5xx from here on
	for _, r := range []struct {
		method, path string
		body         any
	}{{"POST", "/v1/jobs", map[string]any{"question": question}}, {"GET", "/v1/jobs/" + id, nil}, {"POST", "/predict", map[string]any{"question": question}}} {
		resp, body := b.do(t, r.method, r.path, r.body, bearer(aliceKey))
		if resp.StatusCode < 500 {
			t.Errorf("%s %s with Redis down: %d %s", r.method, r.path, resp.StatusCode, body)
		}
		if strings.Contains(string(body), "goroutine") || strings.Contains(string(body), ".go:") || strings.Contains(string(body), aliceKey) {
			t.Errorf("error answer holds internals: %s", body)
		}
	}

	if err := db.Server.Restart(); err != nil { // for a clean shutdown
		t.Fatal(err)
	}
	testwait.Until(t, "Redis to be back", func() bool {
		resp, _ := b.do(t, "GET", "/readyz", nil, nil)
		return resp.StatusCode == 200
	})

	logs := b.logs.String()
	if !strings.Contains(logs, `"status":401`) || !strings.Contains(logs, `"status":503`) || !strings.Contains(logs, `"owner":"alice"`) {
		t.Fatalf("the log lacks the requests it should record:\n%s", logs)
	}
	for _, secret := range []string{
		aliceKey, bobKey, opsKey, wrongKey, sha256Hex(bobKey), question,
		base64.StdEncoding.EncodeToString([]byte("ops:" + opsKey)), base64.StdEncoding.EncodeToString([]byte("alice:" + aliceKey)),
		"Bearer " + aliceKey[:8], "goroutine ",
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs)
		}
	}
}

// TestAnonymousModeWarns: without API keys the API is open, and says so.
func TestAnonymousModeWarns(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	if !strings.Contains(b.logs.String(), "API_KEYS is not set") {
		t.Errorf("no warning about the open API in:\n%s", b.logs.String())
	}
	id := b.submit(t, "q")
	if resp, _ := b.do(t, "GET", "/v1/jobs/"+id, nil, nil); resp.StatusCode != 200 {
		t.Errorf("anonymous read: %d", resp.StatusCode)
	}
}

// streamStatus opens a stream, returns its status and closes it.
func (b *bundle) streamStatus(t *testing.T, path string, hdr http.Header) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", b.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr.Clone()
	resp, err := b.http.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	cancel()
	resp.Body.Close()
	return resp.StatusCode
}

// directive returns one directive of a Content-Security-Policy.
func directive(csp, name string) string {
	for d := range strings.SplitSeq(csp, ";") {
		if d = strings.TrimSpace(d); strings.HasPrefix(d, name+" ") {
			return d
		}
	}
	return ""
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func sha256Base64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}
