package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
)

// errCancelled is the cause set on a run's context when its job is cancelled.
var errCancelled = errors.New("job cancelled")

// action is what becomes of a task after its start and run (settle).
type action int

const (
	// retryLater: record `retrying`, let asynq run it again after delay.
	retryLater action = iota
	// deferLater: like retryLater, but the attempt does not count (the rate
	// limiter asked for a wait longer than is worth holding a slot).
	deferLater
	// failNow: record `failed` and stop (asynq.SkipRetry).
	failNow
	// revoke: the job was cancelled; drop the task (asynq.RevokeTask).
	revoke
	// requeued: the worker is shutting down; asynq puts the task back itself.
	requeued
	// completed: record the run's result.
	completed
	// refused: the start ended it failed, its owner's budget spent; drop
	// the task.
	refused
	// dropped: it had ended, or is gone, before the start; drop the task.
	dropped
)

// verdict is what became of an attempt: the outcome of classify for a
// failed run, or completed, refused or dropped.
type verdict struct {
	action action
	delay  time.Duration
	reason *jobs.Error
	// quoted is LM text the reason's message quotes (a parse failure's
	// answer, which restates the question): the record keeps it for the
	// job's owner; logs get it only with Config.LogQuestions (logReason).
	quoted string
	// run and took are a completed run's result and how long it took.
	run  *RunResult
	took time.Duration
}

// classify is the one place that maps a run's failure to what the queue does
// with the job. ctx is the run's context (its cause tells a cancel from a
// shutdown or a timeout); last says this was the last allowed attempt.
func classify(ctx context.Context, err error, attempt int, last bool, backoff func(int) time.Duration) verdict {
	if errors.Is(context.Cause(ctx), errCancelled) {
		return verdict{action: revoke}
	}
	var (
		rl *lmclient.RateLimitedError
		ae *lmclient.APIError
		pe *program.ParseError
		ce *lmclient.ConfigError
	)
	switch {
	case errors.Is(err, jobs.ErrProgramVersionGone):
		// Pruned while the job waited: no retry brings it back.
		return verdict{action: failNow, reason: &jobs.Error{Code: jobs.CodeProgramVersionGone, Message: err.Error()}}
	case errors.Is(err, ErrUnknownProgram):
		return verdict{action: failNow, reason: &jobs.Error{Code: "invalid_payload", Message: err.Error()}}
	case errors.As(err, &rl):
		return verdict{action: deferLater, delay: rl.Delay, reason: &jobs.Error{Code: "rate_limited", Message: err.Error()}}
	case errors.As(err, &pe):
		return verdict{action: failNow, reason: &jobs.Error{Code: "parse_error", Message: err.Error()}, quoted: pe.Response}
	case errors.As(err, &ce):
		return verdict{action: failNow, reason: &jobs.Error{Code: "config_error", Message: err.Error()}}
	case errors.As(err, &ae):
		reason := &jobs.Error{Code: "lm_error", Message: err.Error(), Status: ae.Status}
		if !ae.Retryable() {
			return verdict{action: failNow, reason: reason}
		}
		delay := ae.RetryAfter
		if delay == 0 {
			delay = backoff(attempt)
		}
		return retryOrFail(reason, delay, last)
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		return retryOrFail(&jobs.Error{Code: "timeout", Message: "attempt exceeded JOB_TIMEOUT"}, backoff(attempt), last)
	case ctx.Err() != nil:
		// asynq cancels the handler's context only when it aborts at the end
		// of a graceful shutdown; it has already put the task back.
		return verdict{action: requeued, reason: &jobs.Error{Code: "worker_stopped", Message: "worker shut down mid-run; the job runs again elsewhere"}}
	default:
		// Our own Redis or anything unforeseen: worth another try.
		return retryOrFail(&jobs.Error{Code: "internal", Message: err.Error()}, backoff(attempt), last)
	}
}

func retryOrFail(reason *jobs.Error, delay time.Duration, last bool) verdict {
	if last {
		return verdict{action: failNow, reason: reason}
	}
	return verdict{action: retryLater, delay: delay, reason: reason}
}

// defaultBackoff is 1 s, 2 s, 4 s … capped at 10 s: what DSPy's LiteLLM
// retries do, now across the queue instead of inside one call.
func defaultBackoff(attempt int) time.Duration {
	d := time.Second << max(attempt-1, 0)
	if d > 10*time.Second || d <= 0 {
		d = 10 * time.Second
	}
	return d
}

// delayedError carries the delay a retry asked for to asynq's RetryDelayFunc;
// counted=false keeps it out of asynq's retry count (IsFailure).
type delayedError struct {
	delay   time.Duration
	counted bool
	err     error
}

func (e *delayedError) Error() string {
	return fmt.Sprintf("retry in %s: %v", e.delay, e.err)
}

func (e *delayedError) Unwrap() error { return e.err }

// handled marks an error a handler returns after it has recorded and logged
// the outcome: asynq still reads it (SkipRetry, the retry delay), and the
// error handler neither logs it again nor its text, which may quote the LM.
type handled struct{ err error }

func (h handled) Error() string { return h.err.Error() }

func (h handled) Unwrap() error { return h.err }

// retryDelay is asynq's RetryDelayFunc: the delay our classification chose,
// else asynq's default.
func retryDelay(n int, err error, t *asynq.Task) time.Duration {
	var de *delayedError
	if errors.As(err, &de) {
		return notBefore(de.delay)
	}
	// A lost lease (the worker was killed): run it again at once.
	if errors.Is(err, asynq.ErrLeaseExpired) {
		return 0
	}
	return defaultBackoff(n + 1)
}

// notBefore turns a delay into one asynq cannot fire early. asynq scores its
// retry set in whole Unix seconds, so a task due at t runs once the clock's
// second reaches floor(t): up to a second early. A Retry-After must not be.
func notBefore(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + time.Second
}

// isFailure is asynq's IsFailure: a deferred job is not a failure.
func isFailure(err error) bool {
	var de *delayedError
	if errors.As(err, &de) {
		return de.counted
	}
	return true
}
