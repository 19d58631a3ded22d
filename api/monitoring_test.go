package api_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
)

// TestDashboardPageLoadsNothingRemote: asynqmon's index page links Google
// Fonts, which the service may not reach (offline installs) and which the
// dashboard's policy should not have to allow. Every page of the dashboard
// (asynqmon serves the index for each of its routes) comes without a link
// off the host, under a policy that names no other host, while its scripts
// and files are served as asynqmon has them.
func TestDashboardPageLoadsNothingRemote(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	remote := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for _, path := range []string{"/monitoring/", "/monitoring/queues/interactive", "/monitoring/servers", "/monitoring/queues/a.b"} {
		resp, body := b.do(t, "GET", path, nil, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Asynq - Monitoring") || !strings.Contains(string(body), `<div id="root">`) {
			t.Fatalf("GET %s: %d %.300s", path, resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		if m := remote.FindAllString(string(body), -1); len(m) > 0 {
			t.Errorf("GET %s: the page links off the host: %q", path, m)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "http") || strings.Contains(csp, "fonts.") {
			t.Errorf("GET %s: the policy allows another host: %q", path, csp)
		}
	}

	// The scripts and files pass through whole: as asynqmon itself serves them.
	raw := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: asynq.RedisClientOpt{Addr: b.db.Client.Options().Addr}})
	defer raw.Close()
	for _, path := range []string{"/monitoring/static/js/main.5adda2da.chunk.js", "/monitoring/manifest.json", "/monitoring/favicon.ico"} {
		want := httptest.NewRecorder()
		raw.ServeHTTP(want, httptest.NewRequest(http.MethodGet, path, nil))
		resp, body := b.do(t, "GET", path, nil, nil)
		if resp.StatusCode != http.StatusOK || want.Code != http.StatusOK || !bytes.Equal(body, want.Body.Bytes()) ||
			resp.Header.Get("Content-Type") != want.Header().Get("Content-Type") {
			t.Errorf("GET %s: %d %q, %d bytes; asynqmon serves %d %q, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body),
				want.Code, want.Header().Get("Content-Type"), want.Body.Len())
		}
	}
	if resp, body := b.do(t, "GET", "/monitoring/api/queues", nil, nil); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"queues"`) {
		t.Errorf("GET /monitoring/api/queues: %d %.200s", resp.StatusCode, body)
	}
}
