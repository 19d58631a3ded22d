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
