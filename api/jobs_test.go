package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// jobBody is GET /v1/jobs/{id} as a client reads it.
type jobBody struct {
	ID         string            `json:"id"`
	Status     string            `json:"status"`
	Queue      string            `json:"queue"`
	Question   string            `json:"question"`
	Attempts   int               `json:"attempts"`
	Result     *jobs.Result      `json:"result"`
	Error      *jobs.Error       `json:"error"`
	CreatedAt  time.Time         `json:"created_at"`
	StartedAt  *time.Time        `json:"started_at"`
	FinishedAt *time.Time        `json:"finished_at"`
	Links      map[string]string `json:"links"`
}

// v1Error is the /v1 error body; Problems lists a refused batch upload's.
type v1Error struct {
	Error struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Field    string `json:"field"`
		Problems []struct {
			Line   int    `json:"line"`
			Field  string `json:"field"`
			Reason string `json:"reason"`
		} `json:"problems"`
	} `json:"error"`
}

func TestSubmitAndPoll(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": "What is Redis?"}, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	sub := decode[submitted](t, body)
	self := "/v1/jobs/" + sub.ID
	want := submitted{ID: sub.ID, Status: "queued", Links: map[string]string{"self": self, "events": self + "/events", "cancel": self + "/cancel"}}
	if diff := cmp.Diff(want, sub); diff != "" {
		t.Errorf("202 body (-want +got):\n%s", diff)
	}
	if got := resp.Header.Get("Location"); got != self {
		t.Errorf("Location = %q, want %q", got, self)
	}
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	if resp.Header.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID")
	}

	resp, body = b.do(t, "GET", self, nil, nil)
	got := decode[jobBody](t, body)
	if resp.StatusCode != 200 || got.Status != "queued" || got.Attempts != 0 || got.Result != nil || got.StartedAt != nil {
		t.Fatalf("queued job: %d %s", resp.StatusCode, body)
	}

	a := b.start(t, sub.ID)
	complete(t, a, "An in-memory data store.")
	_, body = b.do(t, "GET", self, nil, nil)
	got = decode[jobBody](t, body)
	wantRes := result("An in-memory data store.")
	wantRes.Provenance.Attempts = 1
	if diff := cmp.Diff(wantRes, got.Result, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if got.Status != "completed" || got.Attempts != 1 || got.Question != "What is Redis?" || got.Queue != "interactive" ||
		got.StartedAt == nil || got.FinishedAt == nil || got.CreatedAt.IsZero() || got.Error != nil {
		t.Errorf("completed job: %s", body)
	}
	// Usage is DSPy's shape, unchanged.
	var usage map[string]map[string]int
	if err := json.Unmarshal(got.Result.Usage, &usage); err != nil || usage["fake/model"]["total_tokens"] != 15 {
		t.Errorf("usage = %s", got.Result.Usage)
	}
}

func TestLongPoll(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit(t, "q")
	a := b.start(t, id)
	type answer struct {
		status int
		body   jobBody
	}
	done := make(chan answer, 1)
	go func() {
		resp, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait=30s", nil, nil)
		var j jobBody
		_ = json.Unmarshal(body, &j)
		done <- answer{resp.StatusCode, j}
	}()
	// The waiter subscribes on the hub; end the job once it has.
	testwait.Until(t, "the long-poll to subscribe", func() bool { return b.hub.Subscribers() > 0 })
	select {
	case got := <-done:
		t.Fatalf("long-poll answered before the job ended: %+v", got)
	default:
	}
	token(t, a, "partial")
	complete(t, a, "done")
	got := <-done
	if got.status != 200 || got.body.Status != "completed" || got.body.Result.Answer("answer") != "done" {
		t.Fatalf("long-poll = %+v", got)
	}

	// An ended job answers at once; so does wait=0.
	resp, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait=60", nil, nil)
	if resp.StatusCode != 200 || decode[jobBody](t, body).Status != "completed" {
		t.Errorf("wait on an ended job: %d %s", resp.StatusCode, body)
	}
	for _, bad := range []string{"soon", "-1s", "-3", "NaN"} {
		resp, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait="+bad, nil, nil)
		e := decode[v1Error](t, body)
		if resp.StatusCode != 422 || e.Error.Field != "wait" {
			t.Errorf("wait=%s: %d %s", bad, resp.StatusCode, body)
		}
	}
}

func TestLongPollTimesOutWithTheJobAsItIs(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit(t, "q")
	resp, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait=50ms", nil, nil)
	if resp.StatusCode != 200 || decode[jobBody](t, body).Status != "queued" {
		t.Fatalf("timed-out long-poll: %d %s", resp.StatusCode, body)
	}
}

func TestJobValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{MaxBodyBytes: 64 << 10}})
	long := strings.Repeat("é", 10001)
	tests := []struct {
		name   string
		body   string
		status int
		code   string
		field  string
		msg    string
	}{
		{"missing question", `{}`, 422, "validation_error", "question", "question: Field required"},
		{"empty question", `{"question": ""}`, 422, "validation_error", "question", "question: String should have at least 1 character"},
		{"too long", `{"question": "` + long + `"}`, 422, "validation_error", "question", "question: String should have at most 10000 characters"},
		{"not a string", `{"question": 42}`, 422, "validation_error", "question", "question: Input should be a valid string"},
		{"null", `{"question": null}`, 422, "validation_error", "question", "question: Input should be a valid string"},
		{"not an object", `["q"]`, 422, "validation_error", "", "Input should be a valid dictionary or object to extract fields from"},
		{"malformed", `{"question": "q"`, 422, "invalid_json", "", "request body is not valid JSON: unexpected end of JSON input"},
		{"syntax", `{"question": q}`, 422, "invalid_json", "", "request body is not valid JSON: invalid character 'q' looking for beginning of value"},
		{"trailing data", `{"question": "q"} {}`, 422, "invalid_json", "", "request body is not valid JSON: unexpected data after the JSON value at offset 18"},
		{"empty body", ``, 422, "validation_error", "question", "question: Field required"},
		{"blank body", " \n", 422, "validation_error", "question", "question: Field required"},
		{"blank question", `{"question": " \t\n\u00a0\u3000"}`, 422, "validation_error", "question", "question: String should not be blank (only whitespace)"},
		{"unknown field", `{"question": "q", "qestion": "x"}`, 422, "validation_error", "qestion", "qestion: Extra inputs are not permitted"},
		{"bad no_cache", `{"question": "q", "no_cache": "yes"}`, 422, "validation_error", "no_cache", "no_cache: Input should be a valid boolean"},
		{"too large", `{"question": "` + strings.Repeat("a", 70<<10) + `"}`, 413, "body_too_large", "", "request body exceeds 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := b.do(t, "POST", "/v1/jobs", tt.body, nil)
			got := decode[v1Error](t, body)
			if resp.StatusCode != tt.status || got.Error.Code != tt.code || got.Error.Field != tt.field || got.Error.Message != tt.msg {
				t.Errorf("%d %s, want %d code=%s field=%s message=%q", resp.StatusCode, body, tt.status, tt.code, tt.field, tt.msg)
			}
		})
	}
	// 10,000 characters of two bytes each are fine: the limit counts
	// characters, not bytes.
	resp, body := b.do(t, "POST", "/v1/jobs", map[string]string{"question": long[:len(long)-2]}, nil)
	if resp.StatusCode != 202 {
		t.Errorf("10000 characters: %d %s", resp.StatusCode, body)
	}
}

func TestUnknownIDsAndRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	for _, tt := range []struct{ method, path string }{
		{"GET", "/v1/jobs/0123456789abcdef0123456789abcdef"},
		{"GET", "/v1/jobs/not-an-id"},
		{"GET", "/v1/jobs/0123456789ABCDEF0123456789ABCDEF"},
		{"GET", "/v1/jobs/0123456789abcdef0123456789abcdef/events"},
		{"POST", "/v1/jobs/0123456789abcdef0123456789abcdef/cancel"},
		{"DELETE", "/v1/jobs/0123456789abcdef0123456789abcdef"},
		{"GET", "/v1/nothing"},
	} {
		resp, body := b.do(t, tt.method, tt.path, nil, nil)
		got := decode[v1Error](t, body)
		if resp.StatusCode != 404 || got.Error.Code != "not_found" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, resp.StatusCode, body)
		}
	}
	resp, body := b.do(t, "GET", "/nothing", nil, nil)
	if resp.StatusCode != 404 || string(body) != "{\"detail\":\"Not Found\"}\n" {
		t.Errorf("unknown seed-style route: %d %s", resp.StatusCode, body)
	}
	resp, body = b.do(t, "PUT", "/v1/jobs", "{}", nil)
	if got := decode[v1Error](t, body); resp.StatusCode != 405 || got.Error.Code != "method_not_allowed" || resp.Header.Get("Allow") == "" {
		t.Errorf("405: %d %s allow=%q", resp.StatusCode, body, resp.Header.Get("Allow"))
	}
	resp, body = b.do(t, "GET", "/predict", nil, nil)
	if resp.StatusCode != 405 || string(body) != "{\"detail\":\"Method Not Allowed\"}\n" {
		t.Errorf("seed 405: %d %s", resp.StatusCode, body)
	}
}

func TestCancelAndDelete(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit(t, "q")
	resp, body := b.do(t, "POST", "/v1/jobs/"+id+"/cancel", nil, nil)
	if resp.StatusCode != 200 || decode[jobBody](t, body).Status != "cancelled" {
		t.Fatalf("cancel: %d %s", resp.StatusCode, body)
	}
	// Cancelling again is harmless; a worker reaching the task drops it.
	resp, body = b.do(t, "POST", "/v1/jobs/"+id+"/cancel", nil, nil)
	if resp.StatusCode != 200 || decode[jobBody](t, body).Status != "cancelled" {
		t.Fatalf("second cancel: %d %s", resp.StatusCode, body)
	}
	if _, out, err := b.store.Start(context.Background(), id, "w", 0); err != nil || out != store.Ended {
		t.Fatalf("start after cancel: %v %v", out, err)
	}

	// A completed job cannot be cancelled.
	done := b.submit(t, "q2")
	complete(t, b.start(t, done), "a")
	resp, body = b.do(t, "POST", "/v1/jobs/"+done+"/cancel", nil, nil)
	if got := decode[v1Error](t, body); resp.StatusCode != 409 || got.Error.Code != "job_ended" {
		t.Fatalf("cancel a completed job: %d %s", resp.StatusCode, body)
	}

	// Delete removes ended and running jobs alike (a running one is
	// cancelled first).
	running := b.submit(t, "q3")
	a := b.start(t, running)
	for _, id := range []string{id, done, running} {
		resp, body := b.do(t, "DELETE", "/v1/jobs/"+id, nil, nil)
		if resp.StatusCode != 204 || len(body) != 0 {
			t.Errorf("delete %s: %d %s", id, resp.StatusCode, body)
		}
		resp, _ = b.do(t, "GET", "/v1/jobs/"+id, nil, nil)
		if resp.StatusCode != 404 {
			t.Errorf("get after delete: %d", resp.StatusCode)
		}
	}
	if _, err := a.Complete(context.Background(), result("late"), 0); err == nil {
		t.Error("a deleted job's attempt could still complete")
	}
}

func TestIdempotencyOverHTTP(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	key := http.Header{"Idempotency-Key": {"order-17"}}
	resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": "q"}, key)
	first := decode[submitted](t, body)
	if resp.StatusCode != 202 || resp.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s", resp.StatusCode, body)
	}
	resp, body = b.do(t, "POST", "/v1/jobs", map[string]any{"question": "q"}, key)
	if got := decode[submitted](t, body); resp.StatusCode != 202 || got.ID != first.ID || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s", resp.StatusCode, body)
	}
	resp, body = b.do(t, "POST", "/v1/jobs", map[string]any{"question": "another"}, key)
	if got := decode[v1Error](t, body); resp.StatusCode != 422 || got.Error.Code != "idempotency_mismatch" || got.Error.Field != "Idempotency-Key" {
		t.Fatalf("other body: %d %s", resp.StatusCode, body)
	}
	// A concurrent duplicate: the first request is still being accepted.
	if err := b.db.Client.HSet(context.Background(), jobs.JobKey(first.ID), "enqueued", "0").Err(); err != nil {
		t.Fatal(err)
	}
	resp, body = b.do(t, "POST", "/v1/jobs", map[string]any{"question": "q"}, key)
	if got := decode[v1Error](t, body); resp.StatusCode != 409 || got.Error.Code != "idempotency_in_progress" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("in progress: %d %s", resp.StatusCode, body)
	}
	for _, bad := range []string{strings.Repeat("k", 256), "tab\there", "ключ"} {
		resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": "q"}, http.Header{"Idempotency-Key": {bad}})
		if got := decode[v1Error](t, body); resp.StatusCode != 400 || got.Error.Field != "Idempotency-Key" {
			t.Errorf("key %q: %d %s", bad, resp.StatusCode, body)
		}
	}
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	b := setup(t, options{jobs: store.Config{MaxPending: 2}, api: api.Config{BusyRetryAfter: 7 * time.Second}})
	b.submit(t, "1")
	b.submit(t, "2")
	resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": "3"}, nil)
	if got := decode[v1Error](t, body); resp.StatusCode != 503 || got.Error.Code != "queue_full" || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("over QUEUE_MAX_PENDING: %d %s retry-after=%q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	resp, body = b.do(t, "POST", "/predict", map[string]any{"question": "3"}, nil)
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"detail":"too many questions are waiting; retry later"`) || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("/predict over QUEUE_MAX_PENDING: %d %s", resp.StatusCode, body)
	}
}

// TestLongRequestsOutliveTheReadTimeout: a long-poll and a stream last longer
// than the server's ReadTimeout, which would otherwise cancel them.
func TestLongRequestsOutliveTheReadTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{ReadTimeout: 50 * time.Millisecond, Heartbeat: 100 * time.Millisecond}})
	id := b.submit(t, "q")
	resp, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait=300ms", nil, nil)
	if resp.StatusCode != 200 || decode[jobBody](t, body).Status != "queued" {
		t.Fatalf("long-poll past the read timeout: %d %s", resp.StatusCode, body)
	}
	s := b.openSSE(t, "GET", eventsPath(id), nil, nil)
	s.next(t)
	// Two heartbeats later the stream is still there.
	for beats := 0; beats < 2; {
		if f := <-s.frames; f.Comment != "" {
			beats++
		}
	}
	complete(t, b.start(t, id), "a")
	if got := s.rest(t); len(got) != 2 || got[1].Event != "completed" {
		t.Fatalf("stream past the read timeout: %+v", got)
	}
}
