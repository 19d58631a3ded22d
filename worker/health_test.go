package worker_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/rs/zerolog"
)

func TestHealthHandler(t *testing.T) {
	t.Parallel()
	db := redistest.NewServer(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	srv := httptest.NewServer(worker.HealthHandler(db.Client, reg, zerolog.Nop()))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/livez"); code != http.StatusOK {
		t.Fatalf("/livez = %d", code)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with Redis up = %d %s", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics = %d %.200s", code, body)
	}
	// Readiness follows Redis: a worker without Redis cannot take jobs, but
	// it is still alive.
	db.Server.Stop()
	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with Redis down = %d, want 503", code)
	}
	// The endpoint is unauthenticated: it says what is wrong, not the raw
	// error (which names Redis' address).
	if !strings.Contains(body, `"redis":"unavailable"`) || strings.Contains(body, db.Addr) || strings.Contains(body, "dial") {
		t.Fatalf("/readyz with Redis down answers %s; want `\"redis\":\"unavailable\"` without the error", body)
	}
	if code, _ := get("/livez"); code != http.StatusOK {
		t.Fatalf("/livez with Redis down = %d, want 200", code)
	}
}
