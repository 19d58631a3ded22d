package api_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/config"
)

// TestEmptyTokenNeverAuthenticates: a key list holding the empty key's
// digest (config refuses it; a Config built by hand may not) still answers
// 401 to a request without a key or with an empty one.
func TestEmptyTokenNeverAuthenticates(t *testing.T) {
	t.Parallel()
	empty := config.APIKeys{{Name: "eve", SHA256: sha256.Sum256(nil)}}
	b := setup(t, options{api: api.Config{APIKeys: empty, AdminAPIKeys: config.APIKeys{{Name: "root", SHA256: sha256.Sum256(nil)}}}})
	for name, hdr := range map[string]http.Header{
		"no header": nil, "empty bearer": {"Authorization": {"Bearer "}}, "empty header": {"Authorization": {""}},
		"empty basic password": basic("eve", ""),
	} {
		for _, path := range []string{"/v1/jobs/" + unknownJob, "/metrics", "/monitoring/"} {
			if resp, body := b.do(t, "GET", path, nil, hdr); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s with %s: %d %.200s, want 401", path, name, resp.StatusCode, body)
			}
		}
	}
}

// TestDuplicateAuthorizationIsRefused: two Authorization headers are a 400
// naming the header, in the route family's shape, whichever of them is
// valid: not whichever comes first.
func TestDuplicateAuthorizationIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	for name, values := range map[string][]string{
		"right then wrong": {"Bearer " + aliceKey, "Bearer " + wrongKey},
		"wrong then right": {"Bearer " + wrongKey, "Bearer " + aliceKey},
		"two owners":       {"Bearer " + aliceKey, "Bearer " + bobKey},
		"the same twice":   {"Bearer " + aliceKey, "Bearer " + aliceKey},
	} {
		hdr := http.Header{"Authorization": values}
		got := b.wantV1Error(t, "GET", "/v1/jobs/"+unknownJob, hdr, http.StatusBadRequest, "Authorization")
		if got.Error.Code != "invalid_authorization" {
			t.Errorf("%s: code %q", name, got.Error.Code)
		}
		resp, body := b.do(t, "POST", "/predict", `{}`, hdr)
		if resp.StatusCode != http.StatusBadRequest || string(body) != `{"detail":"send one Authorization header, not 2"}`+"\n" {
			t.Errorf("%s on /predict: %d %s", name, resp.StatusCode, body)
		}
		admin := http.Header{"Authorization": {"Bearer " + opsKey, values[1]}}
		if resp, body := b.do(t, "GET", "/metrics", nil, admin); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s on /metrics: %d %.200s", name, resp.StatusCode, body)
		}
	}
	// The public paths read no key.
	if resp, body := b.do(t, "GET", "/health", nil, http.Header{"Authorization": {"a", "b"}}); resp.StatusCode != 200 {
		t.Errorf("/health with two headers: %d %s", resp.StatusCode, body)
	}
}

// TestAuthFailuresAreLimitedPerAddress: past AUTH_FAILURES_PER_MINUTE failed
// authentications, every request from that client address that needs a key
// gets 429 with Retry-After naming the variable, the right key included (so
// the limit tells nothing about keys); other addresses, successes and public
// paths are untouched. Behind TRUSTED_PROXIES the address is the forwarded
// one, an IPv6 one counted by its /64. (A limit of 1 a minute: nothing
// refills while the test runs.)
func TestAuthFailuresAreLimitedPerAddress(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{AuthFailuresPerMinute: 1, TrustedProxies: []string{"127.0.0.1", "::1"}})})
	from := func(addr string, h http.Header) http.Header { return with(h, "X-Forwarded-For", addr) }
	job := "/v1/jobs/" + unknownJob
	get := func(addr string, h http.Header) (*http.Response, []byte) {
		t.Helper()
		return b.do(t, "GET", job, nil, from(addr, h))
	}

	// Successes are not failures.
	for range 5 {
		if resp, body := get("203.0.113.9", bearer(aliceKey)); resp.StatusCode != 404 {
			t.Fatalf("right key: %d %s", resp.StatusCode, body)
		}
	}
	if resp, _ := get("203.0.113.9", bearer(wrongKey)); resp.StatusCode != 401 {
		t.Errorf("first failure after five successes: %d, want 401", resp.StatusCode)
	}

	if resp, _ := get("203.0.113.7", bearer(wrongKey)); resp.StatusCode != 401 {
		t.Fatalf("first failure: %d, want 401", resp.StatusCode)
	}
	for name, hdr := range map[string]http.Header{"wrong key": bearer(wrongKey), "right key": bearer(aliceKey), "no key": nil} {
		got := b.wantV1Error(t, "GET", job, from("203.0.113.7", hdr), http.StatusTooManyRequests, "")
		if got.Error.Code != "auth_rate_limited" || !strings.Contains(got.Error.Message, "AUTH_FAILURES_PER_MINUTE") {
			t.Errorf("over the limit, %s: %+v", name, got)
		}
	}
	resp, body := b.do(t, "POST", "/predict", `{}`, from("203.0.113.7", bearer(aliceKey)))
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 429 || ra < 1 || ra > 60 ||
		!strings.Contains(string(body), `"detail":"too many failed authentications from this address (AUTH_FAILURES_PER_MINUTE: 1 a minute)`) {
		t.Errorf("/predict over the limit: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, body := b.do(t, "GET", "/metrics", nil, from("203.0.113.7", bearer(opsKey))); resp.StatusCode != 429 {
		t.Errorf("/metrics over the limit: %d %.200s", resp.StatusCode, body)
	}
	if resp, _ := b.do(t, "GET", "/health", nil, from("203.0.113.7", nil)); resp.StatusCode != 200 {
		t.Errorf("/health over the limit: %d", resp.StatusCode)
	}
	// Another address is not affected.
	if resp, _ := get("203.0.113.8", bearer(aliceKey)); resp.StatusCode != 404 {
		t.Errorf("another address, right key: %d", resp.StatusCode)
	}
	if resp, _ := get("203.0.113.8", bearer(wrongKey)); resp.StatusCode != 401 {
		t.Errorf("another address, wrong key: %d", resp.StatusCode)
	}
	// IPv6: one /64 is one client.
	if resp, _ := get("2001:db8::1", bearer(wrongKey)); resp.StatusCode != 401 {
		t.Errorf("2001:db8::1: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get("2001:db8::ffff", bearer(wrongKey)); resp.StatusCode != 429 {
		t.Errorf("2001:db8::ffff, same /64: %d, want 429", resp.StatusCode)
	}
	if resp, _ := get("2001:db8:0:1::1", bearer(wrongKey)); resp.StatusCode != 401 {
		t.Errorf("2001:db8:0:1::1, another /64: %d, want 401", resp.StatusCode)
	}

	// Without trusted proxies X-Forwarded-For is the client's word: ignored.
	direct := setup(t, options{api: secured(t, api.Config{AuthFailuresPerMinute: 1})})
	if resp, _ := direct.do(t, "GET", job, nil, from("198.51.100.1", bearer(wrongKey))); resp.StatusCode != 401 {
		t.Errorf("direct, first failure: %d", resp.StatusCode)
	}
	if resp, _ := direct.do(t, "GET", job, nil, from("198.51.100.2", bearer(wrongKey))); resp.StatusCode != 429 {
		t.Errorf("direct, a forged X-Forwarded-For: %d, want 429", resp.StatusCode)
	}
}

// TestAuthFailuresMemoryIsBounded: failures from 30,000 addresses keep the
// live heap within a small bound: the counts are kept for a fixed number of
// addresses (1,000 here), whatever the number of clients.
//
// Not parallel: the live heap is the process's, and parallel tests would move
// it.
func TestAuthFailuresMemoryIsBounded(t *testing.T) {
	b := setup(t, options{logTo: io.Discard, api: secured(t, api.Config{
		AuthFailureAddresses: 1000, TrustedProxies: []string{"192.0.2.1"}, // httptest.NewRequest's RemoteAddr
	})})
	h := b.srv.Handler()
	fail := func(i int) {
		req := httptest.NewRequest("GET", "/v1/jobs/"+unknownJob, nil)
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		req.Header.Set("Authorization", "Bearer "+wrongKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, rec.Code)
		}
	}
	for i := range 1000 {
		fail(i) // the counts' table at its size
	}
	before := liveHeap()
	for i := 1000; i < 31_000; i++ {
		fail(i)
	}
	after := liveHeap()
	const bound = 2 << 20 // 30,000 kept addresses would take several MB more
	if grew := int64(after) - int64(before); grew > bound {
		t.Errorf("live heap grew by %d bytes over failures from 30,000 addresses (bound %d)", grew, bound)
	}
	t.Logf("live heap: %d → %d bytes", before, after)
}

// TestAuthFailureLogIsSampled: 300 failed authentications write a burst of
// access log lines, then one in 100, and the written lines count the ones
// left out.
func TestAuthFailureLogIsSampled(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{AuthFailuresPerMinute: 1000})})
	h := b.srv.Handler()
	for range 300 {
		req := httptest.NewRequest("GET", "/v1/jobs/"+unknownJob, nil)
		req.Header.Set("Authorization", "Bearer "+wrongKey)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	lines, unlogged := 0, 0
	for _, line := range strings.Split(b.logs.String(), "\n") {
		if !strings.Contains(line, `"status":401`) {
			continue
		}
		lines++
		var l struct {
			Unlogged int `json:"unlogged_auth_failures"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		unlogged += l.Unlogged
	}
	if lines < 10 || lines > 20 || unlogged == 0 || lines+unlogged > 300 {
		t.Errorf("300 failures: %d lines written, counting %d left out", lines, unlogged)
	}
}
