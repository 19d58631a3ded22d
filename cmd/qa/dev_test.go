package main

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testlog"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// devRun is a `qa dev` running in-process, as `make run` starts it.
type devRun struct {
	base   string // the API URL its welcome text prints
	stdout *testlog.Buffer
	stderr *testlog.Buffer
	stop   func() // cancels it and waits for it to exit
}

var welcomeAPI = regexp.MustCompile(`(?m)^  API +(http://\S+)$`)

// startDev runs `qa dev` with vars as its whole environment (an instant
// demo LM), and returns once its welcome text is out.
func startDev(t *testing.T, vars map[string]string) *devRun {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	vars = maps.Clone(vars)
	for k, v := range map[string]string{"PORT": "0", "WORKER_CONCURRENCY": "4", "BATCH_CONCURRENCY": "2", "LOG_LEVEL": "warn"} {
		if _, ok := vars[k]; !ok {
			vars[k] = v
		}
	}
	var stdout, stderr testlog.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, e, []string{"dev", "--demo-ttft", "0", "--demo-tps", "0"}) }()
	d := &devRun{stdout: &stdout, stderr: &stderr}
	stopped := false
	d.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("qa dev exited %d: %s", code, stderr.String())
		}
	}
	t.Cleanup(d.stop)
	defer func() { // on the way out of a failed wait: what it said instead
		if d.base == "" && !stopped {
			t.Logf("qa dev stderr: %s", stderr.String())
		}
	}()
	testwait.Until(t, "qa dev to print its welcome", func() bool {
		select {
		case code := <-done:
			stopped = true
			t.Fatalf("qa dev exited %d before serving: %s", code, stderr.String())
		default:
		}
		return strings.Contains(stdout.String(), "Press Ctrl-C")
	})
	m := welcomeAPI.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no API URL in the welcome text:\n%s", stdout.String())
	}
	d.base = m[1]
	return d
}

// ask submits question as a job, waits for it and returns its provenance.
func (d *devRun) ask(t *testing.T, question string) (cacheHit bool) {
	t.Helper()
	resp, err := http.Post(d.base+"/v1/jobs", "application/json", strings.NewReader(`{"question":`+jsonString(question)+`}`))
	if err != nil {
		t.Fatal(err)
	}
	var sub struct{ ID string }
	err = json.NewDecoder(resp.Body).Decode(&sub)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %v", resp.StatusCode, err)
	}
	resp, err = http.Get(d.base + "/v1/jobs/" + sub.ID + "?wait=30s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var job struct {
		Status string
		Result struct {
			Provenance struct {
				CacheHit bool `json:"cache_hit"`
			}
		}
	}
	if err := json.Unmarshal(body, &job); err != nil || job.Status != "completed" {
		t.Fatalf("job: %d %s", resp.StatusCode, body)
	}
	return job.Result.Provenance.CacheHit
}

// demoHealth is /health's demo field.
func (d *devRun) demoHealth(t *testing.T) bool {
	t.Helper()
	resp, err := http.Get(d.base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Status string
		Demo   *bool
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.Status != "healthy" || h.Demo == nil {
		t.Fatalf("/health: %d %+v %v, want a status and a demo field", resp.StatusCode, h, err)
	}
	return *h.Demo
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestDemoAnswersStayInTheDemoNamespace is the newcomer's first hour:
// `make run` with no key answers from the demo LM, and a restart pointed at
// a real model (here another fake LM, at another address) must not serve
// the demo's answer from the disk or Redis cache. The demo's own answers
// stay cached across restarts, in one "demo" namespace, though its port
// changes each time.
func TestDemoAnswersStayInTheDemoNamespace(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	cacheDir := t.TempDir()
	vars := map[string]string{"REDIS_URL": db.URL(), "CACHE_DIR": cacheDir}
	const q = "Why is the sky blue?"

	demo := startDev(t, vars)
	if !demo.demoHealth(t) {
		t.Error("/health does not say the demo LM is answering")
	}
	if demo.ask(t, q) {
		t.Fatal("the first demo answer came from the cache")
	}
	demo.stop()
	demo = startDev(t, vars)
	if !demo.ask(t, q) {
		t.Error("a restarted demo did not find its own cached answer")
	}
	demo.stop()
	if dirs, _ := os.ReadDir(cacheDir); len(dirs) != 1 || dirs[0].Name() != "demo" {
		t.Errorf("CACHE_DIR holds %v, want one namespace, demo", dirs)
	}

	real, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = real.Close() })
	vars["LM_API_BASE"], vars["LM_API_KEY"] = real.URL(), "sk-real"
	live := startDev(t, vars)
	if live.demoHealth(t) {
		t.Error("/health says demo with a real LM configured")
	}
	if live.ask(t, q) || real.RequestsTo("/v1/chat/completions") != 1 {
		t.Fatalf("with a real LM configured, the answer came from the cache (%d calls to it)", real.RequestsTo("/v1/chat/completions"))
	}
}

// TestDevListensOnLoopback: qa dev runs with no API keys, so unless HOST
// says otherwise it listens on 127.0.0.1 only, and its welcome text says
// so. An explicit HOST wins; a non-loopback one with no API_KEYS keeps the
// loud warning.
func TestDevListensOnLoopback(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	for _, tc := range []struct {
		host     string // "" leaves HOST unset
		loopback bool
		warning  bool
	}{
		{"", true, false},
		{"127.0.0.1", true, false},
		{"0.0.0.0", false, true},
	} {
		vars := map[string]string{"REDIS_URL": db.URL(), "CACHE_DIR": t.TempDir(), "LOG_LEVEL": "info", "LOG_FORMAT": "json"}
		if tc.host != "" {
			vars["HOST"] = tc.host
		}
		dev := startDev(t, vars)
		addr := listenAddr(t, dev.stderr.String())
		if ip := net.ParseIP(addr.Addr().String()); ip.IsLoopback() != tc.loopback || (!tc.loopback && !ip.IsUnspecified()) {
			t.Errorf("HOST=%q: the API listens on %s", tc.host, addr)
		}
		welcome := dev.stdout.String()
		if tc.loopback && !strings.Contains(welcome, "http://127.0.0.1:"+strconv.Itoa(int(addr.Port()))+"/docs") {
			t.Errorf("HOST=%q: the welcome text does not show the loopback URL:\n%s", tc.host, welcome)
		}
		if strings.Contains(welcome, "WARNING") != tc.warning {
			t.Errorf("HOST=%q: warning printed = %v, want %v:\n%s", tc.host, !tc.warning, tc.warning, welcome)
		}
		// What reaches it from another interface of this machine.
		if other := nonLoopbackIP(); other != nil {
			conn, err := net.Dial("tcp", net.JoinHostPort(other.String(), strconv.Itoa(int(addr.Port()))))
			if err == nil {
				conn.Close()
			}
			if (err == nil) == tc.loopback {
				t.Errorf("HOST=%q: a connection to %s: %v", tc.host, other, err)
			}
		}
		resp, err := http.Get(dev.base + "/health")
		if err != nil {
			t.Fatalf("HOST=%q: the printed URL does not answer: %v", tc.host, err)
		}
		resp.Body.Close()
		dev.stop()
	}
}

// listenAddr is the address of the "api listening" log line.
func listenAddr(t *testing.T, logs string) netip.AddrPort {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var l struct{ Message, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == "api listening" {
			ap, err := netip.ParseAddrPort(l.Addr)
			if err != nil {
				t.Fatalf("listen address %q: %v", l.Addr, err)
			}
			return ap
		}
	}
	t.Fatalf("no \"api listening\" line in:\n%s", logs)
	return netip.AddrPort{}
}

// nonLoopbackIP is an IPv4 address of this machine other than loopback, or
// nil when it has none.
func nonLoopbackIP() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	return nil
}
