package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/internal/testlog"
)

func probeEnv(vars map[string]string) (env, *testlog.Buffer, *testlog.Buffer) {
	var out, errOut testlog.Buffer
	return env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(k string) string { return vars[k] }}, &out, &errOut
}

func TestHealthcheckExitCodes(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"unavailable"}`))
		case "/livez":
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		code int
		out  string
	}{
		{"live by url", nil, []string{"--url", srv.URL + "/livez"}, 0, `{"status":"ok"}`},
		{"not ready by url", nil, []string{"--url", srv.URL + "/readyz"}, 1, "503"},
		{"api port from env", map[string]string{"PORT": port}, []string{"--path", "livez"}, 0, "127.0.0.1:" + port + "/livez"},
		{"api readyz by default", map[string]string{"PORT": port}, nil, 1, "/readyz: 503"},
		{"worker port from env", map[string]string{"WORKER_METRICS_PORT": port, "PORT": "1"}, []string{"--worker", "--path", "/livez"}, 0, `"ok"`},
		{"nothing listening", nil, []string{"--url", "http://127.0.0.1:1/readyz"}, 1, "connection refused"},
		{"port 0 needs --url", map[string]string{"PORT": "0"}, nil, 1, "pass --url"},
		{"stray argument", nil, []string{"extra"}, 2, "usage: qa healthcheck"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, out, errOut := probeEnv(tc.vars)
			code := run(context.Background(), e, append([]string{"healthcheck"}, tc.args...))
			if tc.code == 2 {
				// A usage error exits 1 with the usage printed (errUsage).
				if code != 1 || !strings.Contains(errOut.String(), tc.out) {
					t.Fatalf("code %d, stderr %q", code, errOut.String())
				}
				return
			}
			if code != tc.code {
				t.Fatalf("code %d, want %d; stdout %q stderr %q", code, tc.code, out.String(), errOut.String())
			}
			if got := out.String() + errOut.String(); !strings.Contains(got, tc.out) {
				t.Fatalf("output %q does not contain %q", got, tc.out)
			}
		})
	}
}

func TestHealthcheckHostFromEnv(t *testing.T) {
	t.Parallel()
	e, _, _ := probeEnv(map[string]string{"HOST": "::", "PORT": "8000"})
	u, err := probeURL(e, false, "/readyz")
	if err != nil || u != "http://127.0.0.1:8000/readyz" {
		t.Fatalf("%q %v", u, err)
	}
	e, _, _ = probeEnv(map[string]string{"HOST": "10.1.2.3", "WORKER_METRICS_PORT": strconv.Itoa(9999)})
	if u, err = probeURL(e, true, "/livez"); err != nil || u != "http://10.1.2.3:9999/livez" {
		t.Fatalf("%q %v", u, err)
	}
}
