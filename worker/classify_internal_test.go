package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
)

// Run contexts as the handler sees them after a run: runCtx is a
// WithCancelCause child of asynq's handler context.
func liveCtx(t *testing.T) context.Context { return runCtx(t, context.Background()) }

// cancelledCtx: the job was cancelled (the worker's cancel listener).
func cancelledCtx(*testing.T) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errCancelled)
	return ctx
}

// timedOutCtx: asynq's handler context reached the task's deadline
// (JOB_TIMEOUT); the run's context inherits its cause.
func timedOutCtx(t *testing.T) context.Context {
	parent, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	t.Cleanup(cancel)
	return runCtx(t, parent)
}

// shutdownCtx: asynq cancelled the handler's context at the end of a
// graceful shutdown.
func shutdownCtx(t *testing.T) context.Context {
	parent, cancel := context.WithCancel(context.Background())
	cancel()
	return runCtx(t, parent)
}

func runCtx(t *testing.T, parent context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(parent)
	t.Cleanup(func() { cancel(nil) })
	return ctx
}

// minutes is a backoff no real one equals, so a verdict shows which delay
// it took and for which attempt.
func minutes(attempt int) time.Duration { return time.Duration(attempt) * time.Minute }

func TestClassify(t *testing.T) {
	t.Parallel()
	rateLimited := fmt.Errorf("run: %w", &lmclient.RateLimitedError{Delay: 42 * time.Second})
	parse := fmt.Errorf("run: %w", &program.ParseError{Adapter: "JSONAdapter", Response: "the LM's text", Expected: []string{"answer"}})
	cfg := fmt.Errorf("run: %w", &lmclient.ConfigError{Msg: "unknown provider"})
	server := &lmclient.APIError{Status: 503, Message: "overloaded"}
	serverAfter := &lmclient.APIError{Status: 429, Code: "rate_limit_exceeded", RetryAfter: 7 * time.Second}
	dropped := &lmclient.APIError{Code: lmclient.CodeConnection}
	badRequest := &lmclient.APIError{Status: 400, Message: "bad"}
	badRequestAfter := &lmclient.APIError{Status: 401, RetryAfter: 7 * time.Second}
	tooLong := &lmclient.APIError{Status: 400, Code: lmclient.CodeContextWindow}
	deadline := fmt.Errorf("run: %w", context.DeadlineExceeded)
	canceled := fmt.Errorf("run: %w", context.Canceled)
	redisDown := errors.New("start job: dial tcp: connection refused")

	lmError := func(e *lmclient.APIError) *jobs.Error {
		return &jobs.Error{Code: "lm_error", Message: e.Error(), Status: e.Status}
	}
	timeout := &jobs.Error{Code: "timeout", Message: "attempt exceeded JOB_TIMEOUT"}
	stopped := &jobs.Error{Code: "worker_stopped", Message: "worker shut down mid-run; the job runs again elsewhere"}

	tests := []struct {
		name    string
		ctx     context.Context
		err     error
		attempt int
		last    bool
		want    verdict
	}{
		{"rate limited: deferred by the limiter's delay", liveCtx(t), rateLimited, 2, false,
			verdict{action: deferLater, delay: 42 * time.Second, reason: &jobs.Error{Code: "rate_limited", Message: rateLimited.Error()}}},
		{"rate limited on the last attempt: still deferred, it does not count", liveCtx(t), rateLimited, 3, true,
			verdict{action: deferLater, delay: 42 * time.Second, reason: &jobs.Error{Code: "rate_limited", Message: rateLimited.Error()}}},
		{"parse error: fails at once, quoting the LM's text", liveCtx(t), parse, 1, false,
			verdict{action: failNow, reason: &jobs.Error{Code: "parse_error", Message: parse.Error()}, quoted: "the LM's text"}},
		{"config error: fails at once", liveCtx(t), cfg, 1, false,
			verdict{action: failNow, reason: &jobs.Error{Code: "config_error", Message: cfg.Error()}}},
		{"retryable LM error: backoff of this attempt", liveCtx(t), server, 2, false,
			verdict{action: retryLater, delay: 2 * time.Minute, reason: lmError(server)}},
		{"retryable LM error with Retry-After: the provider's delay", liveCtx(t), serverAfter, 2, false,
			verdict{action: retryLater, delay: 7 * time.Second, reason: lmError(serverAfter)}},
		{"retryable transport failure (no status)", liveCtx(t), fmt.Errorf("call: %w", dropped), 1, false,
			verdict{action: retryLater, delay: time.Minute, reason: &jobs.Error{Code: "lm_error", Message: "call: " + dropped.Error()}}},
		{"retryable LM error on the last attempt: fails", liveCtx(t), serverAfter, 3, true,
			verdict{action: failNow, reason: lmError(serverAfter)}},
		{"non-retryable LM error: fails at once", liveCtx(t), badRequest, 1, false,
			verdict{action: failNow, reason: lmError(badRequest)}},
		{"non-retryable LM error with Retry-After: still fails", liveCtx(t), badRequestAfter, 1, false,
			verdict{action: failNow, reason: lmError(badRequestAfter)}},
		{"context window exceeded: fails at once", liveCtx(t), tooLong, 1, false,
			verdict{action: failNow, reason: lmError(tooLong)}},
		{"job timeout: retried after this attempt's backoff", timedOutCtx(t), deadline, 2, false,
			verdict{action: retryLater, delay: 2 * time.Minute, reason: timeout}},
		{"job timeout on the last attempt: fails", timedOutCtx(t), deadline, 3, true,
			verdict{action: failNow, reason: timeout}},
		{"cancelled: revoked, nothing recorded", cancelledCtx(t), canceled, 1, false,
			verdict{action: revoke}},
		{"cancelled wins over the error the run returned", cancelledCtx(t), serverAfter, 1, false,
			verdict{action: revoke}},
		{"cancelled wins on the last attempt", cancelledCtx(t), rateLimited, 3, true,
			verdict{action: revoke}},
		{"shutdown: asynq has put the task back", shutdownCtx(t), canceled, 2, false,
			verdict{action: requeued, reason: stopped}},
		{"shutdown on the last attempt: still requeued", shutdownCtx(t), canceled, 3, true,
			verdict{action: requeued, reason: stopped}},
		{"unknown error: retried as internal", liveCtx(t), redisDown, 3, false,
			verdict{action: retryLater, delay: 3 * time.Minute, reason: &jobs.Error{Code: "internal", Message: redisDown.Error()}}},
		{"unknown error on the last attempt: fails", liveCtx(t), redisDown, 3, true,
			verdict{action: failNow, reason: &jobs.Error{Code: "internal", Message: redisDown.Error()}}},
		{"context error while the run's context is live: internal", liveCtx(t), deadline, 1, false,
			verdict{action: retryLater, delay: time.Minute, reason: &jobs.Error{Code: "internal", Message: deadline.Error()}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := classify(tt.ctx, tt.err, tt.attempt, tt.last, minutes)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(verdict{})); diff != "" {
				t.Errorf("classify(%v, attempt %d, last %t) (-want +got):\n%s", tt.err, tt.attempt, tt.last, diff)
			}
		})
	}
}

func TestRetryOrFail(t *testing.T) {
	t.Parallel()
	reason := &jobs.Error{Code: "internal", Message: "boom"}
	tests := []struct {
		name string
		last bool
		want verdict
	}{
		{"attempts left: retry after the delay", false, verdict{action: retryLater, delay: 5 * time.Second, reason: reason}},
		{"last attempt: fail, no delay", true, verdict{action: failNow, reason: reason}},
	}
	for _, tt := range tests {
		got := retryOrFail(reason, 5*time.Second, tt.last)
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(verdict{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestDefaultBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{-1, time.Second}, // not sent by asynq; must not shift by a negative count
		{0, time.Second},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 8 * time.Second},
		{5, 10 * time.Second}, // 16 s, capped
		{6, 10 * time.Second},
		{35, 10 * time.Second}, // 1 s << 34 overflows int64 nanoseconds
		{64, 10 * time.Second}, // a shift past the width is 0
		{math.MaxInt, 10 * time.Second},
	}
	for _, tt := range tests {
		if got := defaultBackoff(tt.attempt); got != tt.want {
			t.Errorf("defaultBackoff(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
	// Every attempt count gives a delay in (0, 10 s], never shorter than
	// the one before.
	prev := time.Duration(0)
	for n := 1; n <= 200; n++ {
		d := defaultBackoff(n)
		if d <= 0 || d > 10*time.Second || d < prev {
			t.Fatalf("defaultBackoff(%d) = %v after %v: want non-decreasing within (0, 10s]", n, d, prev)
		}
		prev = d
	}
}

func TestNotBefore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want time.Duration
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Nanosecond, time.Second + time.Nanosecond},
		{1500 * time.Millisecond, 2500 * time.Millisecond},
		{7 * time.Second, 8 * time.Second},
	}
	for _, tt := range tests {
		if got := notBefore(tt.in); got != tt.want {
			t.Errorf("notBefore(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	task := asynq.NewTask("qa:predict", nil)
	tests := []struct {
		name string
		n    int // asynq's retry count so far
		err  error
		want time.Duration
	}{
		{"a counted retry: its delay, not before", 0, handled{&delayedError{delay: 7 * time.Second, counted: true, err: errors.New("x")}}, 8 * time.Second},
		{"a deferral: its delay, whatever asynq's count", 5, handled{&delayedError{delay: 42 * time.Second, err: errors.New("x")}}, 43 * time.Second},
		{"a zero delay: at once", 3, &delayedError{err: errors.New("x")}, 0},
		{"a lost lease: at once", 4, asynq.ErrLeaseExpired, 0},
		{"a lost lease, wrapped", 4, fmt.Errorf("handler: %w", asynq.ErrLeaseExpired), 0},
		{"a plain error, first retry: the default backoff", 0, errors.New("start job: boom"), time.Second},
		{"a plain error, third retry", 2, errors.New("start job: boom"), 4 * time.Second},
		{"a plain error, many retries: capped", 30, errors.New("start job: boom"), 10 * time.Second},
	}
	for _, tt := range tests {
		if got := retryDelay(tt.n, tt.err, task); got != tt.want {
			t.Errorf("%s: retryDelay(%d, %v) = %v, want %v", tt.name, tt.n, tt.err, got, tt.want)
		}
	}
}

func TestIsFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"a counted retry", handled{&delayedError{delay: time.Second, counted: true, err: errors.New("x")}}, true},
		{"a deferral", handled{&delayedError{delay: time.Second, err: errors.New("x")}}, false},
		{"a deferral, unwrapped", &delayedError{err: errors.New("x")}, false},
		{"a skipped retry", handled{fmt.Errorf("%w: bad request", asynq.SkipRetry)}, true},
		{"a lost lease", asynq.ErrLeaseExpired, true},
		{"a plain error", errors.New("start job: boom"), true},
	}
	for _, tt := range tests {
		if got := isFailure(tt.err); got != tt.want {
			t.Errorf("%s: isFailure(%v) = %t, want %t", tt.name, tt.err, got, tt.want)
		}
	}
}
