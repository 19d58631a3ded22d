package api_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// TestMetricLabelsAreBounded: 10,000 requests with invented methods, to a
// route and to unmatched paths, add no series to /metrics and leave the live
// heap where it was: every label taken from a request has a fixed set of
// values. (The access log goes to io.Discard here: it writes lines, it keeps
// nothing per request.)
//
// Not parallel: the live heap is the process's, and parallel tests would move
// it.
func TestMetricLabelsAreBounded(t *testing.T) {
	b := setup(t, options{logTo: io.Discard})
	h := b.srv.Handler()
	send := func(method, path string) {
		req := httptest.NewRequest(method, path, nil)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	scrape := func() string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("/metrics: %d", rec.Code)
		}
		return rec.Body.String()
	}
	invent := func(i int) {
		if i%2 == 0 {
			send(fmt.Sprintf("ZZ%d", i), "/health")
		} else {
			send(fmt.Sprintf("ZZ%d", i), fmt.Sprintf("/no/such/path/%d", i))
		}
	}
	// Every series the flood can touch exists before it: the invented
	// methods' (both kinds), and the scrape's own.
	invent(0)
	invent(1)
	scrape()
	before := scrape()
	heapBefore := liveHeap()
	for i := 2; i < 10_002; i++ {
		invent(i)
	}
	heapAfter := liveHeap()
	after := scrape()
	if nb, na := strings.Count(before, "\n"), strings.Count(after, "\n"); nb != na {
		t.Errorf("/metrics grew from %d to %d lines", nb, na)
	}
	for _, leak := range []string{`method="ZZ`, `route="/no/such`} {
		if strings.Contains(after, leak) {
			t.Errorf("/metrics holds a request's value: %s…", leak)
		}
	}
	if !strings.Contains(after, `qa_http_requests_total{method="other",route="unmatched",status="405"} 5001`) {
		t.Errorf("the invented methods are not counted under other:\n%s", grepLines(after, "qa_http_requests_total"))
	}
	// Generous: each series kept for an invented method takes kilobytes, so
	// 10,000 of them would take tens of MB.
	const bound = 4 << 20
	if grew := int64(heapAfter) - int64(heapBefore); grew > bound {
		t.Errorf("live heap grew by %d bytes over 10,000 invented methods (bound %d)", grew, bound)
	}
	t.Logf("live heap: %d → %d bytes", heapBefore, heapAfter)
}

// liveHeap is the heap still in use after two collections (the second
// frees what finalizers released in the first).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAccessLogBoundsRequestValues: the access log writes a request's method
// and path, which a client chooses, cut to a bounded length.
func TestAccessLogBoundsRequestValues(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	method, path := strings.Repeat("Z", 20_000), "/"+strings.Repeat("p", 20_000)
	b.srv.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
	for _, line := range strings.Split(b.logs.String(), "\n") {
		if strings.Contains(line, `"message":"request"`) && len(line) > 2000 {
			t.Errorf("access log line of %d bytes: %.300s…", len(line), line)
		}
	}
}
