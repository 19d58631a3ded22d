package lmclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
)

// goldenBody is the request body pinned in testdata/wire/<name>.txt: what
// the live path sends.
func goldenBody(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "wire", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := bytes.Cut(raw, []byte("\n\n"))
	if !ok {
		t.Fatalf("%s: no body", name)
	}
	return bytes.TrimSuffix(body, []byte("\n"))
}

// TestBatchLineBodyIsLiveBody: for every golden vector of TestWireGolden, the
// batch line's body is the live body byte for byte; for the streamed ones,
// the live body without its two streaming fields (a batch never streams).
func TestBatchLineBodyIsLiveBody(t *testing.T) {
	t.Parallel()
	const customID = "qa-7\"\n🙂"
	for _, tc := range wireCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := goldenBody(t, tc.name)
			if tc.req().OnDelta != nil {
				for _, f := range []string{`,"stream_options":{"include_usage":true}`, `,"stream":true`} {
					if !bytes.Contains(want, []byte(f)) {
						t.Fatalf("streamed golden body lacks %s", f)
					}
					want = bytes.Replace(want, []byte(f), nil, 1)
				}
			}
			c := newClient(t, tc.config("http://127.0.0.1:9/v1"), Deps{})
			line, err := c.BatchLine(customID, tc.req())
			if err != nil {
				t.Fatal(err)
			}
			url := "/v1/chat/completions"
			if strings.HasPrefix(tc.config("").Model, "azure/") {
				url = "/chat/completions"
			}
			prefix := `{"custom_id":"qa-7\"\n🙂","method":"POST","url":"` + url + `","body":`
			if !bytes.HasPrefix(line, []byte(prefix)) || !bytes.HasSuffix(line, []byte("}")) {
				t.Fatalf("line = %s\nwant the prefix %s", line, prefix)
			}
			if got := line[len(prefix) : len(line)-1]; !bytes.Equal(got, want) {
				t.Errorf("body differs from the live body:\n got %s\nwant %s", got, want)
			}
			var back struct {
				CustomID string          `json:"custom_id"`
				Body     json.RawMessage `json:"body"`
			}
			if err := json.Unmarshal(line, &back); err != nil || back.CustomID != customID {
				t.Errorf("encoding/json reads custom_id %q (%v), want %q", back.CustomID, err, customID)
			}
		})
	}
}

func TestBatchLineRefuses(t *testing.T) {
	t.Parallel()
	c := newClient(t, Config{APIBase: "http://127.0.0.1:9/v1"}, Deps{})
	for _, tc := range []struct {
		id  string
		req *program.Request
	}{
		{"", chatRequest("q")},
		{"bad\xff", chatRequest("q")},
		{"ok", &program.Request{}},
		{"ok", nil},
	} {
		if line, err := c.BatchLine(tc.id, tc.req); err == nil {
			t.Errorf("BatchLine(%q, %v) = %s, want an error", tc.id, tc.req, line)
		}
	}
}

// responseRecorder serves next and keeps the last response body it sent.
type responseRecorder struct {
	next http.Handler
	mu   sync.Mutex
	last []byte
}

func (r *responseRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rec := httptest.NewRecorder()
	r.next.ServeHTTP(rec, req)
	r.mu.Lock()
	r.last = rec.Body.Bytes()
	r.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// TestParseBatchLineIsLiveDecode: an output line carrying the body a live
// call received decodes to the live call's completion, usage included.
func TestParseBatchLineIsLiveDecode(t *testing.T) {
	t.Parallel()
	lm, err := fakelm.NewUnstarted(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &responseRecorder{next: lm.Handler()}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c := newClient(t, Config{APIBase: srv.URL + "/v1", APIKey: "sk-test"}, Deps{})
	live, err := c.Complete(ctxT(t), chatRequest("What does a batch cost?"))
	if err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	body := rec.last
	rec.mu.Unlock()
	line := `{"id":"batch_req_1","custom_id":"qa-1","response":{"status_code":200,"request_id":"req_1","body":` + string(body) + `},"error":null}`
	id, comp, err := c.ParseBatchLine([]byte(line))
	if err != nil || id != "qa-1" {
		t.Fatalf("ParseBatchLine = %q, %v", id, err)
	}
	if len(live.Usage) == 0 {
		t.Fatal("the live call reported no usage to compare")
	}
	if diff := cmp.Diff(live, comp); diff != "" {
		t.Errorf("batch completion differs from the live one (-live +batch):\n%s", diff)
	}
}

// TestParseBatchLineErrors: failed lines of OpenAI's output and error files
// are typed as live errors; malformed lines are plain errors.
func TestParseBatchLineErrors(t *testing.T) {
	t.Parallel()
	c := newClient(t, Config{APIBase: "http://127.0.0.1:9/v1"}, Deps{})
	type want struct {
		status              int
		code                string
		retryable, unfinish bool
	}
	for _, tc := range []struct {
		name, line string
		want       want
	}{
		{"rate limited", `{"id":"b1","custom_id":"a","response":{"status_code":429,"request_id":"r","body":{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}},"error":null}`,
			want{429, "rate_limit_exceeded", true, false}},
		{"server error", `{"id":"b1","custom_id":"a","response":{"status_code":500,"request_id":"r","body":{"error":{"message":"oops","type":"server_error"}}},"error":null}`,
			want{500, "", true, false}},
		{"context window", `{"id":"b1","custom_id":"a","response":{"status_code":400,"request_id":"r","body":{"error":{"message":"too long","code":"context_length_exceeded"}}},"error":null}`,
			want{400, CodeContextWindow, false, false}},
		{"bad request", `{"id":"b1","custom_id":"a","response":{"status_code":400,"request_id":"r","body":"plain text"},"error":null}`,
			want{400, "", false, false}},
		{"expired", `{"id":"b1","custom_id":"a","response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}`,
			want{0, CodeBatchExpired, true, true}},
		{"cancelled", `{"id":"b1","custom_id":"a","response":null,"error":{"code":"batch_cancelled","message":"This request was not executed because the batch was cancelled."}}`,
			want{0, CodeBatchCancelled, false, true}},
		{"other error object", `{"custom_id":"a","error":{"code":"invalid_request","message":"m"}}`,
			want{0, "invalid_request", false, false}},
		{"no choices", `{"custom_id":"a","response":{"status_code":200,"body":{"choices":[]}}}`,
			want{0, CodeTruncated, true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, comp, err := c.ParseBatchLine([]byte(tc.line))
			var ae *APIError
			if id != "a" || comp != nil || !errors.As(err, &ae) {
				t.Fatalf("ParseBatchLine = %q, %+v, %v; want custom_id a and an *APIError", id, comp, err)
			}
			got := want{ae.Status, ae.Code, ae.Retryable(), ae.Unfinished()}
			if got != tc.want || ae.Message == "" {
				t.Errorf("error %+v: got %+v, want %+v", ae, got, tc.want)
			}
		})
	}
	for _, line := range []string{
		`not json`, `{"response":{"status_code":200,"body":{}}}`, `{"custom_id":""}`, `[]`,
		`{"custom_id":"a","response":null,"error":null}`,
		`{"custom_id":"a","response":{"status_code":302,"body":{}}}`,
		`{"custom_id":"a","response":{"status_code":200,"body":{"choices":[{"message":{"content":"x"}}],"usage":"bad"}}}`,
		`{"custom_id":"a","body":` + strings.Repeat(" ", MaxBatchLineBytes) + `1}`,
	} {
		id, comp, err := c.ParseBatchLine([]byte(line))
		var ae *APIError
		if err == nil || comp != nil || (errors.As(err, &ae) && ae.Status != 0) {
			t.Errorf("ParseBatchLine(%.60q) = %q, %+v, %v; want a malformed-line error", line, id, comp, err)
		}
	}
}

func FuzzParseBatchLine(f *testing.F) {
	for _, s := range []string{
		`{"id":"b","custom_id":"a","response":{"status_code":200,"request_id":"r","body":{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}},"error":null}`,
		`{"custom_id":"a","response":{"status_code":429,"body":{"error":{"code":"rate_limit_exceeded"}}}}`,
		`{"custom_id":"a","error":{"code":"batch_expired","message":"m"}}`,
		`{"custom_id":"\u00e9","response":{"status_code":200,"body":{"choices":[]}}}`,
		`{"custom_id":null}`, `{`, `"s"`, ``,
	} {
		f.Add([]byte(s))
	}
	c, err := New(Config{APIBase: "http://127.0.0.1:9/v1"}, Deps{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = c.Close() })
	f.Fuzz(func(t *testing.T, line []byte) {
		id, comp, err := c.ParseBatchLine(line)
		if (comp == nil) == (err == nil) {
			t.Fatalf("exactly one of completion and error: %+v, %v", comp, err)
		}
		if !json.Valid(line) {
			if err == nil || id != "" {
				t.Fatalf("invalid JSON read as %q, %v", id, err)
			}
			return
		}
		// encoding/json, reading the same paths, is the reference.
		var ref struct {
			CustomID string `json:"custom_id"`
			Response struct {
				StatusCode int `json:"status_code"`
				Body       struct {
					Choices []struct {
						Message struct {
							Content string `json:"content"`
						} `json:"message"`
						FinishReason string `json:"finish_reason"`
					} `json:"choices"`
				} `json:"body"`
			} `json:"response"`
		}
		if json.Unmarshal(line, &ref) != nil {
			return
		}
		if id != ref.CustomID {
			t.Fatalf("custom_id %q, encoding/json reads %q", id, ref.CustomID)
		}
		if comp != nil {
			ch := ref.Response.Body.Choices
			if len(ch) == 0 || comp.Text != ch[0].Message.Content || comp.FinishReason != ch[0].FinishReason {
				t.Fatalf("completion %+v, encoding/json reads %+v", comp, ref.Response)
			}
		}
	})
}

// TestCachedIsCompletesRead: Cached answers what Complete's cache read
// answers (CacheHit, its key, empty usage), without calling the provider,
// and nothing for NoCache or SkipCacheRead requests.
func TestCachedIsCompletesRead(t *testing.T) {
	t.Parallel()
	b := setup(t, withMemory)
	q := "Is the cache read alone?"
	if comp, ok := b.c.Cached(ctxT(t), chatRequest(q)); ok {
		t.Fatalf("Cached before any answer = %+v", comp)
	}
	first := completeAccept(t, b.c, chatRequest(q))
	key, err := b.c.CacheKey(chatRequest(q))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := b.c.Cached(ctxT(t), chatRequest(q))
	want := &program.Completion{Text: first.Text, FinishReason: first.FinishReason, Usage: program.Usage{}, CacheHit: true, CacheKey: key}
	if !ok || !cmp.Equal(got, want) {
		t.Fatalf("Cached = %+v, %v; want %+v", got, ok, want)
	}
	viaComplete, err := b.c.Complete(ctxT(t), chatRequest(q))
	if err != nil || !cmp.Equal(viaComplete, want) {
		t.Errorf("Complete's hit = %+v, %v; want what Cached gives, %+v", viaComplete, err, want)
	}
	for _, mod := range []func(*program.Request){
		func(r *program.Request) { r.NoCache = true },
		func(r *program.Request) { r.SkipCacheRead = true },
	} {
		req := chatRequest(q)
		mod(req)
		if comp, ok := b.c.Cached(ctxT(t), req); ok {
			t.Errorf("Cached(%+v) = %+v, want nothing", req, comp)
		}
	}
	if comp, ok := b.c.Cached(ctxT(t), &program.Request{}); ok {
		t.Errorf("Cached(no messages) = %+v", comp)
	}
	if calls(b) != 1 {
		t.Errorf("LM calls = %d, want 1: Cached never calls", calls(b))
	}
}

func TestCachedWithoutCache(t *testing.T) {
	t.Parallel()
	b := setup(t)
	completeAccept(t, b.c, chatRequest("No cache here"))
	if comp, ok := b.c.Cached(ctxT(t), chatRequest("No cache here")); ok {
		t.Errorf("Cached with no cache layer = %+v", comp)
	}
}

// TestCachedFillsBack: a Redis hit through Cached is copied into memory, as
// Complete's read does.
func TestCachedFillsBack(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	b := setup(t, withRedis(db), func(c *Config, _ *Deps) { c.RedisEnabled = true })
	first := completeAccept(t, b.c, chatRequest("Filled back?"))
	cfg := b.cfg
	cfg.MemoryEnabled = true
	other := newClient(t, cfg, Deps{Redis: db.Client})
	got, ok := other.Cached(ctxT(t), chatRequest("Filled back?"))
	if !ok || got.Text != first.Text {
		t.Fatalf("Cached from Redis = %+v, %v", got, ok)
	}
	if _, ok, _ := other.cache.layers[0].get(context.Background(), got.CacheKey); !ok {
		t.Error("a Redis hit through Cached must be copied into memory")
	}
}

// TestBatchLineAllocs: a line is written into one buffer, its body in
// place (a renderer writes up to 50,000 of them per chunk; 2 allocations,
// the body's and the line's, before).
func TestBatchLineAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	c := newClient(t, Config{APIBase: "http://127.0.0.1:9/v1"}, Deps{})
	req := chatRequest("How many allocations does one line take?")
	req.OnDelta = func(string) {}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.BatchLine("qa-123", req); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations per BatchLine", allocs)
	if allocs > 1 {
		t.Errorf("%.0f allocations per BatchLine, want 1", allocs)
	}
}
