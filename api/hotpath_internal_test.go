package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/rs/zerolog"
)

// TestRequestPathAllocs bounds the allocations of one request through the
// API's middleware (request id, access log at the warn level services run
// with under load, metrics, recovery, deadlines) answering a completed
// job's view: 34 allocations before the response encoder and buffer were
// reused, the access log skipped below its level and the metrics children
// cached; 30 after (the recorder's missing deadlines cost 2 of them); 25
// since the security headers and Content-Type share their values; 22 since
// the outputs are encoded with a pooled encoder.
func TestRequestPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	s := newTestServer(t, zerolog.New(io.Discard).Level(zerolog.WarnLevel))
	defer s.Shutdown(context.Background())
	done := time.UnixMilli(1_700_000_000_000).UTC()
	j := &jobs.Job{ID: "0123456789abcdef0123456789abcdef", Status: jobs.StatusCompleted, Attempts: 1,
		Spec:      jobs.Spec{ClientSpec: jobs.QuestionSpec("What is the capital of France?"), ServerSpec: jobs.ServerSpec{Queue: jobs.QueueInteractive}},
		CreatedAt: done, StartedAt: &done, FinishedAt: &done,
		Result: &jobs.Result{Outputs: jobs.Outputs{{Name: "reasoning", Value: "France's capital is Paris."}, {Name: "answer", Value: "Paris"}},
			Provenance: jobs.Provenance{Model: "openai/gpt-4o-mini", Attempts: 1, LMCalls: 1}},
	}
	s.engine.GET("/v1/probe", func(c *gin.Context) { writeJSON(c, 200, viewOf(j)) })
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v1/probe", nil)
	serve := func() {
		rec.Body.Reset()
		s.Handler().ServeHTTP(rec, req)
	}
	serve()
	if rec.Code != 200 {
		t.Fatalf("probe: %d %s", rec.Code, rec.Body)
	}
	allocs := testing.AllocsPerRun(200, serve)
	t.Logf("%.0f allocations per request", allocs)
	if allocs > 22 {
		t.Errorf("%.0f allocations per request, want at most %d", allocs, 22)
	}
}

// TestAcceptedBodyAllocs: a submit's 202 body is the same bytes as the map
// it was encoded from before (keys in sorted order), without the map's
// reflection and key sorting (14 allocations before, 5 after, the test's
// copy of the bytes one of them).
func TestAcceptedBodyAllocs(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	want, err := json.Marshal(map[string]any{"id": id, "status": jobs.StatusQueued, "links": linksFor(id)})
	if err != nil {
		t.Fatal(err)
	}
	encode := func() []byte {
		e := jsonEncoders.Get().(*jsonEncoder)
		defer e.release()
		if err := e.enc.Encode(acceptedBody(id, jobs.StatusQueued)); err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(e.buf.Bytes())
	}
	if got := encode(); string(got) != string(want)+"\n" {
		t.Errorf("202 body = %s, want %s", got, want)
	}
	if raceEnabled {
		return
	}
	allocs := testing.AllocsPerRun(200, func() { encode() })
	t.Logf("%.0f allocations", allocs)
	if allocs > 5 {
		t.Errorf("202 body: %.0f allocations, want at most 5", allocs)
	}
}
