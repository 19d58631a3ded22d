package api_test

import (
	"crypto/sha256"
	"net/http"
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
