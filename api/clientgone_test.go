package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
)

// TestClientGoneIsNotAnError: a client that hangs up on /predict,
// /predict/stream or /batch (the access log's 499) asked a question but met
// no failure: the JSON summary counts it, not as an error.
func TestClientGoneIsNotAnError(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{MetricsFlushInterval: 5 * time.Millisecond}})
	b.startWorker(t, b.hangBehaviour)
	for _, r := range []struct{ path, body string }{
		{"/predict", `{"question":"q"}`}, {"/predict/stream", `{"question":"q"}`}, {"/batch", `[{"question":"q"}]`},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", b.url+r.path, strings.NewReader(r.body))
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := b.http.Do(req)
			if err == nil {
				for err == nil {
					_, err = resp.Body.Read(make([]byte, 1<<16))
				}
				resp.Body.Close()
			}
		}()
		id := b.runningJob(t)
		cancel()
		<-done
		testwait.Until(t, r.path+"'s job to be cancelled", func() bool { return b.jobStatus(t, id) == jobs.StatusCancelled })
		if resp, _ := b.do(t, "DELETE", "/v1/jobs/"+id, nil, nil); resp.StatusCode != 204 {
			t.Fatalf("delete: %d", resp.StatusCode)
		}
	}
	type summary struct {
		Requests  int     `json:"total_requests"`
		Errors    int     `json:"total_errors"`
		ErrorRate float64 `json:"error_rate"`
	}
	var got summary
	testwait.Until(t, "the three questions to be counted", func() bool {
		_, body := b.do(t, "GET", "/metrics", nil, http.Header{"Accept": {"application/json"}})
		got = decode[summary](t, body)
		return got.Requests == 3
	})
	if got.Errors != 0 || got.ErrorRate != 0 {
		t.Errorf("summary after three hang-ups: %+v, want no errors", got)
	}
	if logs := b.logs.String(); !strings.Contains(logs, `"status":499`) {
		t.Errorf("no 499 in the access log:\n%s", logs)
	}
}
