package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/programrun"
	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
)

// sink is where an attempt's end is written: a job's attempt
// (store.Attempt, the record script) or a batch item's
// (batches.ItemAttempt, the batch script). Each write is one script call,
// safe to repeat after a lost reply; one refused because the job or item
// has already ended, or because a newer attempt runs it, says so (ended).
type sink interface {
	// Complete records the result, adding tokens to its owner's usage of
	// the day, and returns the result as recorded.
	Complete(ctx context.Context, r *jobs.Result, tokens int64) (json.RawMessage, error)
	// Fail ends it failed for reason.
	Fail(ctx context.Context, reason *jobs.Error) error
	// Retry puts it back to run again after delay, this attempt counted.
	Retry(ctx context.Context, reason *jobs.Error, delay time.Duration) error
	// Defer puts it back to run again after delay, this attempt uncounted.
	Defer(ctx context.Context, reason *jobs.Error, delay time.Duration) error
	// Cancelled records that the run stopped because its job or batch was
	// cancelled.
	Cancelled(ctx context.Context) error
}

// streamer publishes the pieces of an answer as the run streams them: a
// job's attempt does (store.Attempt); a batch item streams nothing.
type streamer interface {
	StageToken(ctx context.Context, stage, field, content string) error
	StageReset(ctx context.Context, stage, reason string) error
	// Trail has the end write publish the last pieces, in order, before
	// its own event.
	Trail(pieces []store.Piece)
}

// cacheCarrier sets the LM cache's entries with the result's write
// (store.Attempt); a batch item's sink writes none.
type cacheCarrier interface {
	Cache(entries []store.CacheEntry)
}

// checkpointer records a multi-stage job's finished stage (store.Attempt):
// a retry resumes after it.
type checkpointer interface {
	Checkpoint(ctx context.Context, index int, cp *jobs.Checkpoint) error
}

// ended reports whether a write was refused because the job or item had
// already ended, or a newer attempt runs it.
func ended(err error) bool {
	return errors.Is(err, store.ErrTerminal) || errors.Is(err, store.ErrStale) || errors.Is(err, batches.ErrEnded) ||
		errors.Is(err, batches.ErrStale)
}

// finalWriteContext is for the writes made after a run (its result, its
// failure): they must happen even when the run's context is done, and may
// wait out a Redis outage.
func finalWriteContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), writePatience)
}

// settle is the one place an attempt's verdict becomes a write through its
// sink, what asynq does with the task, the outcome metric and one log line.
func (w *Worker) settle(ctx context.Context, t *asynq.Task, a *attempt, v verdict) error {
	wctx, cancel := finalWriteContext(ctx)
	defer cancel()
	if v.run != nil && v.run.Cache != nil {
		defer func() {
			if err := v.run.Cache(wctx); err != nil {
				a.log.Warn().Err(err).Msg("cache the LM's answers")
			}
		}()
	}
	name := a.kind.name
	switch v.action {
	case dropped:
		w.observe(a, "dropped")
		a.line(zerolog.DebugLevel, true).Msg(name + " not run: it has ended or is gone")
		return asynq.RevokeTask
	case refused:
		// The start has ended it failed, saying why, for its owner.
		w.observe(a, "failed")
		a.line(zerolog.InfoLevel, true).Str("code", jobs.ErrCodeBudget).Msg(name + " not run: its owner's daily token budget is spent")
		return asynq.RevokeTask
	case completed:
		return w.complete(wctx, t, a, v)
	case revoke:
		if err := persist(wctx, a.sink.Cancelled); err != nil && !ended(err) {
			return fmt.Errorf("record cancel: %w", err)
		}
		return w.stopped(a)
	case requeued:
		// One try: the worker is stopping, and the next attempt's start
		// mends what is left running. asynq puts the task back itself.
		w.observe(a, "requeued")
		line := a.line(zerolog.InfoLevel, false)
		if err := a.sink.Defer(wctx, v.reason, 0); err != nil {
			line = a.log.Warn().Err(err)
		}
		line.Msg(name + " put back: worker shutting down")
		return handled{errors.New(v.reason.Message)}
	case failNow:
		err := persist(wctx, func(ctx context.Context) error { return a.sink.Fail(ctx, v.reason) })
		switch {
		case errors.Is(err, store.ErrStale):
			// A newer attempt runs the job and will end it. (A repeat of
			// this fail after a lost reply finds it ended, not stale.)
			return w.stopped(a)
		case err != nil && !ended(err):
			return fmt.Errorf("record failure: %w", err) // run again, so that it ends right
		}
		w.observe(a, "failed")
		w.logReason(a.line(zerolog.WarnLevel, false), v).Msg(name + " failed")
		return handled{fmt.Errorf("%w: %s", asynq.SkipRetry, v.reason.Message)}
	}
	// Run again later: retryLater counts the attempt, deferLater does not.
	write, outcome := a.sink.Retry, "retried"
	if v.action == deferLater {
		write, outcome = a.sink.Defer, "deferred"
	}
	err := persist(wctx, func(ctx context.Context) error { return write(ctx, v.reason, v.delay) })
	if ended(err) {
		return w.stopped(a)
	}
	// Another error leaves the write undone: the task goes back all the
	// same, and the next start mends what the write would have.
	w.observe(a, outcome)
	w.logReason(a.line(zerolog.InfoLevel, v.action == deferLater), v).Int64("retry_in_ms", v.delay.Milliseconds()).Msg(name + " will run again")
	return handled{&delayedError{delay: v.delay, counted: v.action == retryLater, err: errors.New(v.reason.Message)}}
}

// complete records a run's result.
func (w *Worker) complete(ctx context.Context, t *asynq.Task, a *attempt, v verdict) error {
	res := v.run
	state := res.StateSHA256
	if state == "" {
		state = w.deps.Runner.StateSHA256()
	}
	r := &jobs.Result{
		Outputs: res.Outputs,
		Provenance: jobs.Provenance{
			Model: w.deps.Runner.Model(), StateSHA256: state,
			CacheHit: res.CacheHit, LMCalls: res.LMCalls,
			Program: programrun.ProgramName(a.spec.Program), ProgramVersion: a.spec.ProgramVersion, Path: a.path,
		},
		Usage:          res.Usage,
		LatencySeconds: v.took.Seconds(),
		Stages:         res.Stages,
	}
	w.price(r, res)
	if w.cfg.DisableUsage {
		r.Usage = json.RawMessage("null")
		r.Stages = withoutUsage(r.Stages)
	}
	if c, ok := a.sink.(cacheCarrier); ok && res.CacheWrites != nil {
		// The LM cache's entries go with the result (settle's deferred
		// Cache finds nothing left); a result refused sets none.
		entries, err := res.CacheWrites(ctx)
		if err != nil {
			a.log.Warn().Err(err).Msg("cache the LM's answers")
		}
		c.Cache(entries)
	}
	var recorded json.RawMessage
	err := persist(ctx, func(ctx context.Context) (err error) {
		recorded, err = a.sink.Complete(ctx, r, res.Tokens)
		return err
	})
	switch {
	case ended(err):
		return w.stopped(a)
	case err != nil:
		// The answer is lost with this attempt; run it again.
		return fmt.Errorf("record result: %w", err)
	}
	if a.kind.taskCopy && recorded != nil && w.deps.Store.Config().TaskRetention > 0 {
		if _, err := t.ResultWriter().Write(recorded); err != nil {
			a.log.Debug().Err(err).Msg("write task result for the dashboard")
		}
	}
	w.observe(a, "completed")
	w.deps.Metrics.observeRun(a.queue, v.took)
	w.deps.Metrics.ObserveCompletion(a.spec.Owner, r)
	a.line(zerolog.InfoLevel, true).Int64("took_ms", v.took.Milliseconds()).Bool("cache_hit", res.CacheHit).Msg(a.kind.name + " completed")
	return nil
}

// withoutUsage is stages with each usage null (TRACK_USAGE=false).
func withoutUsage(stages []jobs.StageUsage) []jobs.StageUsage {
	out := make([]jobs.StageUsage, len(stages))
	for i, s := range stages {
		s.Usage = json.RawMessage("null")
		out[i] = s
	}
	return out
}

// stopped ends a run whose job or batch was cancelled, or that a newer
// attempt replaced: nothing more to write, and the task goes.
func (w *Worker) stopped(a *attempt) error {
	w.observe(a, "cancelled")
	a.line(zerolog.InfoLevel, true).Msg(a.kind.name + " stopped: cancelled, or a newer attempt runs it")
	return asynq.RevokeTask
}

// observe counts the attempt's outcome, which its span names too.
func (w *Worker) observe(a *attempt, outcome string) {
	a.outcome = outcome
	w.deps.Metrics.observeOutcome(a.queue, outcome)
}

// line starts an outcome's log line at level, or at debug for a routine
// outcome of a quiet kind (a batch item's: a batch has thousands).
func (a *attempt) line(level zerolog.Level, routine bool) *zerolog.Event {
	if routine && a.kind.quiet {
		level = zerolog.DebugLevel
	}
	return a.log.WithLevel(level)
}
