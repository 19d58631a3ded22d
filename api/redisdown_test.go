package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
)

// TestRedisDownAndBack: with Redis gone every endpoint that needs it answers
// 503 with Retry-After at once (never hangs), the others keep answering; when
// Redis is back the service resumes by itself, pub/sub included.
func TestRedisDownAndBack(t *testing.T) {
	t.Parallel()
	db := redistest.NewServer(t)
	b := setup(t, options{db: db, api: api.Config{UnavailableRetryAfter: 3 * time.Second, RedisTimeout: 2 * time.Second}})
	id := b.submit(t, "before")

	db.Server.Stop()
	jsonAccept := http.Header{"Accept": {"application/json"}}
	for _, tt := range []struct {
		method, path string
		body         any
		hdr          http.Header
		want         string
	}{
		{"POST", "/v1/jobs", map[string]any{"question": "q"}, nil, `"code":"unavailable"`},
		{"GET", "/v1/jobs/" + id, nil, nil, `"code":"unavailable"`},
		{"GET", "/v1/jobs/" + id + "?wait=10s", nil, nil, `"code":"unavailable"`},
		{"GET", "/v1/jobs/" + id + "/events", nil, nil, `"code":"unavailable"`},
		{"POST", "/v1/jobs/" + id + "/cancel", nil, nil, `"code":"unavailable"`},
		{"DELETE", "/v1/jobs/" + id, nil, nil, `"code":"unavailable"`},
		{"POST", "/predict", map[string]any{"question": "q"}, nil, `{"detail":"storage is unavailable; retry later"}`},
		{"POST", "/predict/stream", map[string]any{"question": "q"}, nil, `{"detail":"storage is unavailable; retry later"}`},
		{"POST", "/batch", []map[string]any{{"question": "q"}}, nil, `{"detail":"storage is unavailable; retry later"}`},
		{"GET", "/metrics", nil, jsonAccept, `{"detail":"storage is unavailable; retry later"}`},
		{"GET", "/readyz", nil, nil, `"status":"unavailable"`},
	} {
		resp, body := b.do(t, tt.method, tt.path, tt.body, tt.hdr)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" || !strings.Contains(string(body), tt.want) {
			t.Errorf("%s %s with Redis down: %d Retry-After=%q %s", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	for _, path := range []string{"/health", "/livez", "/metrics"} {
		if resp, body := b.do(t, "GET", path, nil, nil); resp.StatusCode != 200 {
			t.Errorf("%s with Redis down: %d %s", path, resp.StatusCode, body)
		}
	}

	if err := db.Server.Restart(); err != nil {
		t.Fatal(err)
	}
	// The pools reconnect on their own; so does the hub.
	testwait.Until(t, "submissions to work again", func() bool {
		resp, _ := b.do(t, "GET", "/readyz", nil, nil)
		return resp.StatusCode == 200
	})
	id = b.submit(t, "after")
	s := b.openSSE(t, "GET", eventsPath(id), nil, nil)
	a := b.start(t, id)
	token(t, a, "back")
	complete(t, a, "back")
	if got := s.rest(t); len(got) != 4 || got[3].Event != "completed" {
		t.Fatalf("events after the restart: %+v", got)
	}
}
