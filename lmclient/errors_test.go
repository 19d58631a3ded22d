package lmclient

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     fakelm.Fault
		stream    bool
		status    int
		code      string
		retryable bool
		after     time.Duration
	}{
		{"429 with Retry-After", fakelm.Status429(3 * time.Second), false, 429, "rate_limit_exceeded", true, 3 * time.Second},
		{"429 streamed", fakelm.Status429(2500 * time.Millisecond), true, 429, "rate_limit_exceeded", true, 2500 * time.Millisecond},
		{"500", fakelm.Status500(), false, 500, "", true, 0},
		{"503 streamed", fakelm.Fault{Kind: fakelm.FaultStatus, Status: 503}, true, 503, "", true, 0},
		{"408", fakelm.Fault{Kind: fakelm.FaultStatus, Status: 408}, false, 408, "", true, 0},
		{"409", fakelm.Fault{Kind: fakelm.FaultStatus, Status: 409}, false, 409, "", true, 0},
		{"400", fakelm.Fault{Kind: fakelm.FaultStatus, Status: 400}, false, 400, "", false, 0},
		{"403", fakelm.Fault{Kind: fakelm.FaultStatus, Status: 403}, false, 403, "", false, 0},
		{"404", fakelm.Fault{Kind: fakelm.FaultStatus, Status: 404}, false, 404, "model_not_found", false, 0},
		{"context window", fakelm.Fault{Kind: fakelm.FaultContextWindow}, false, 400, CodeContextWindow, false, 0},
		{"truncated stream", fakelm.Fault{Kind: fakelm.FaultTruncate, After: 3}, true, 0, CodeTruncated, true, 0},
		{"truncated json", fakelm.Fault{Kind: fakelm.FaultTruncate}, false, 0, CodeConnection, true, 0},
		{"stall past the timeout", fakelm.Fault{Kind: fakelm.FaultStall}, false, 0, CodeTimeout, true, 0},
		{"stall streamed", fakelm.Fault{Kind: fakelm.FaultStall}, true, 0, CodeTimeout, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *Config, _ *Deps) {
				if tt.fault.Kind == fakelm.FaultStall {
					c.Timeout = 300 * time.Millisecond // only the stalls may run into it
				}
			})
			b.srv.FailNext(1, tt.fault)
			req := chatRequest("What is an error?")
			if tt.stream {
				req, _ = streamed(req)
			}
			_, err := b.c.Complete(ctxT(t), req)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if ae.Status != tt.status || ae.Code != tt.code || ae.Retryable() != tt.retryable || ae.RetryAfter != tt.after {
				t.Errorf("got status %d code %q retryable %v after %s; want %d %q %v %s (%v)",
					ae.Status, ae.Code, ae.Retryable(), ae.RetryAfter, tt.status, tt.code, tt.retryable, tt.after, err)
			}
			if Retryable(err) != tt.retryable {
				t.Errorf("Retryable(err) = %v", Retryable(err))
			}
			// The fault was one-off: the client did not retry, the next call works.
			if n := b.srv.RequestsTo("/v1/chat/completions"); n != 1 {
				t.Errorf("requests = %d, want 1 (no retries in the client)", n)
			}
		})
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.SetAPIKey("sk-other")
	_, err := b.c.Complete(ctxT(t), chatRequest("Who am I?"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Retryable() {
		t.Fatalf("err = %v, want a non-retryable 401", err)
	}
}

func TestGarbageIsAnAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	comp, err := b.c.Complete(ctxT(t), chatRequest("Tell me about owls [[fakelm:garbage]]"))
	if err != nil {
		t.Fatal(err)
	}
	if hasMarkers(comp.Text) || comp.Text == "" {
		t.Errorf("text = %q, want prose without markers", comp.Text)
	}
}

func TestDirectiveTimes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req := chatRequest("Flaky question [[fakelm:503,times=1]]")
	_, err := b.c.Complete(ctxT(t), req)
	if !Retryable(err) {
		t.Fatalf("first call: %v, want a retryable error", err)
	}
	if _, err := b.c.Complete(ctxT(t), req); err != nil {
		t.Fatalf("second call: %v, want success", err)
	}
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_ = b.srv.Close()
	_, err := b.c.Complete(ctxT(t), chatRequest("Anyone there?"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != CodeConnection || !ae.Retryable() {
		t.Fatalf("err = %v, want a retryable connection error", err)
	}
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.FailNext(1, fakelm.Fault{Kind: fakelm.FaultStall})
	ctx, cancel := context.WithCancel(ctxT(t))
	req, _ := streamed(chatRequest("Slow one"))
	done := make(chan error, 1)
	go func() {
		_, err := b.c.Complete(ctx, req)
		done <- err
	}()
	testwait.Until(t, "the request to reach the LM", func() bool { return b.srv.RequestsTo("/v1/chat/completions") == 1 })
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	var ae *APIError
	if errors.As(err, &ae) {
		t.Errorf("a cancelled call must not look like a provider error: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{" 0.5 ", 500 * time.Millisecond, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{"NaN", 0, false},
		{"1e100", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	h := http.Header{}
	h.Set("Retry-After", "3")
	h.Set("retry-after-ms", "1250")
	if got := retryAfterFromHeader(h, now); got != 1250*time.Millisecond {
		t.Errorf("retry-after-ms not preferred: %s", got)
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"2", "0.25", "Wed, 21 Oct 2015 07:28:00 GMT", "-3", "inf", "1e9"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %s", s, d)
		}
		if !ok && d != 0 {
			t.Fatalf("not ok but %s", d)
		}
	})
}

func TestAPIErrorFromBodies(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, tt := range []struct {
		body, msg, code string
	}{
		{`{"error":{"message":"m","type":"t","code":"c"}}`, "m", "c"},
		{`{"error":"plain"}`, "plain", ""},
		{`{"message":"bare","code":429}`, "bare", "429"},
		{`<html>Bad Gateway</html>`, "<html>Bad Gateway</html>", ""},
		{``, "Bad Gateway", ""},
	} {
		e := apiErrorFromResponse("m", 502, http.Header{}, []byte(tt.body), now)
		if e.Message != tt.msg || e.Code != tt.code || e.Status != 502 {
			t.Errorf("body %q → %+v", tt.body, e)
		}
	}
}
