package lmclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// APIError is a failed LM call: an HTTP error from the provider, or a
// transport failure (Status 0) such as a timeout, a refused or dropped
// connection, or a stream cut before its end. Callers branch on Retryable and
// RetryAfter, never on the message.
type APIError struct {
	// Status is the HTTP status; 0 for a transport failure.
	Status int
	// Code is the provider's error code ("rate_limit_exceeded",
	// "context_length_exceeded", …), or for a transport failure one of
	// "timeout", "connection" and "truncated".
	Code string
	// Type is the provider's error type, when it sent one.
	Type string
	// Message is the provider's message, or a description of the failure.
	Message string
	// RetryAfter is what the provider asked to wait (Retry-After or
	// retry-after-ms); 0 when it did not say.
	RetryAfter time.Duration
	// Model is the DSPy model string of the call.
	Model string
	// Err is the underlying transport error, if any.
	Err error
}

// Transport failure codes of an APIError with Status 0.
const (
	CodeTimeout    = "timeout"
	CodeConnection = "connection"
	CodeTruncated  = "truncated"
	// CodeContextWindow is the provider code for a prompt that is too long.
	CodeContextWindow = "context_length_exceeded"
)

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("lm ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "status %d", e.Status)
	} else {
		b.WriteString(e.Code)
	}
	if e.Code != "" && e.Status != 0 {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " [retry after %s]", e.RetryAfter)
	}
	return b.String()
}

func (e *APIError) Unwrap() error { return e.Err }

// ContextWindowExceeded reports a prompt longer than the model accepts.
func (e *APIError) ContextWindowExceeded() bool {
	if e.Code == CodeContextWindow {
		return true
	}
	m := strings.ToLower(e.Message)
	return e.Status == http.StatusBadRequest &&
		(strings.Contains(m, "context length") || strings.Contains(m, "context window") || strings.Contains(m, "maximum context"))
}

// Retryable reports whether the same call may succeed later: rate limits
// (429), timeouts (408 and transport), conflicts (409), server errors (5xx)
// dropped or truncated connections, and batch requests whose batch expired
// before they ran (CodeBatchExpired). Bad requests, auth failures, unknown
// models and context-window errors are not.
func (e *APIError) Retryable() bool {
	if e.ContextWindowExceeded() {
		return false
	}
	switch {
	case e.Status == 0:
		return e.Code == CodeTimeout || e.Code == CodeConnection || e.Code == CodeTruncated || e.Code == CodeBatchExpired
	case e.Status == http.StatusTooManyRequests, e.Status == http.StatusRequestTimeout,
		e.Status == http.StatusConflict, e.Status >= 500:
		return true
	}
	return false
}

// RateLimitedError is returned instead of waiting when the shared rate limit
// (or a provider cool-down) would hold the call longer than Config.MaxWait.
// The worker should put the job back with Delay, without counting a failure.
type RateLimitedError struct {
	// Delay is how long until capacity is expected.
	Delay time.Duration
	// Cooldown is true when the wait comes from a provider 429 cool-down
	// rather than from LM_RPM/LM_TPM.
	Cooldown bool
}

func (e *RateLimitedError) Error() string {
	what := "rate limit"
	if e.Cooldown {
		what = "provider cool-down"
	}
	return fmt.Sprintf("lm %s: wait %s exceeds the bound", what, e.Delay.Round(time.Millisecond))
}

// ConfigError is a configuration that cannot work (unknown provider, missing
// key, reasoning-model limits). Its message names what to set.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

func configErrorf(format string, args ...any) error {
	return &ConfigError{Msg: fmt.Sprintf(format, args...)}
}

// RetryAfter returns the delay err asks for: a RateLimitedError's Delay, or
// an APIError's RetryAfter. ok is false when err carries no delay.
func RetryAfter(err error) (time.Duration, bool) {
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		return rl.Delay, true
	}
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, true
	}
	return 0, false
}

// Retryable reports whether err is worth retrying later: a retryable
// APIError or a RateLimitedError. Context cancellation is not.
func Retryable(err error) bool {
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		return true
	}
	var ae *APIError
	return errors.As(err, &ae) && ae.Retryable()
}

// ParseRetryAfter reads a Retry-After value, in seconds (possibly
// fractional) or an HTTP-date relative to now. ok is false for anything else
// or a negative delay; a date in the past gives 0, true.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 || secs != secs || secs > maxRetryAfter.Seconds() {
			return 0, false
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		return 0, true
	}
	if d > maxRetryAfter {
		return 0, false
	}
	return d, true
}

// maxRetryAfter caps what a provider may ask for; beyond is treated as noise.
const maxRetryAfter = 24 * time.Hour

// retryAfterFromHeader prefers retry-after-ms (OpenAI's precise header),
// then Retry-After.
func retryAfterFromHeader(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && ms >= 0 && ms < float64(maxRetryAfter.Milliseconds()) {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	if d, ok := ParseRetryAfter(h.Get("Retry-After"), now); ok {
		return d
	}
	return 0
}

// classifyTransport turns a transport error into an APIError, or returns the
// context's error when the caller's context ended.
func classifyTransport(ctx context.Context, model string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("call lm: %w", ctx.Err())
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	code := CodeConnection
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		code = CodeTimeout
	}
	return &APIError{Code: code, Message: err.Error(), Model: model, Err: err}
}
