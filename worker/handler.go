package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
)

// handle runs one attempt of a job. asynq may run a task more than once; the
// job record (one Lua script, terminal states final, stale attempts refused)
// makes every effect happen once.
func (w *Worker) handle(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.ParsePayload(t.Payload())
	if err != nil {
		// Nothing to record without a job id: archive with the reason.
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	log := w.log.With().Str("job_id", p.JobID).Logger()
	queue, _ := asynq.GetQueueName(ctx)
	maxWait := time.Duration(0)
	if queue == jobs.QueueInteractive && w.cfg.InteractiveMaxWait > 0 {
		maxWait = w.cfg.InteractiveMaxWait
	}
	var (
		att     *store.Attempt
		outcome store.StartOutcome
	)
	err = persist(ctx, func(ctx context.Context) (err error) {
		att, outcome, err = w.deps.Store.Start(ctx, p.JobID, w.cfg.ID, maxWait)
		return err
	})
	if err != nil {
		return fmt.Errorf("start job: %w", err) // Redis trouble: asynq retries
	}
	switch outcome {
	case store.Started:
	case store.OverBudget:
		// The record says why, for its owner; one line per refused job.
		w.deps.Metrics.observeOutcome(queue, "failed")
		log.Info().Str("code", jobs.ErrCodeBudget).Msg("job not run: its owner's daily token budget is spent")
		return asynq.RevokeTask
	default:
		w.deps.Metrics.observeOutcome(queue, "dropped")
		return asynq.RevokeTask // ended already (cancelled, expired, gave up) or gone
	}
	spec := att.Spec
	log = w.withQuestion(log.With().Int("attempt", att.Number).Str("queue", queue), spec.Question()).Logger()
	if len(spec.Inputs) == 0 {
		reason := &jobs.Error{Code: "invalid_payload", Message: "the job's spec has no inputs"}
		return w.finish(ctx, log, att, verdict{action: failNow, reason: reason}, queue)
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer w.jobRuns.track(p.JobID, cancel)()

	opts := RunOptions{NoCache: spec.Options.NoCache, Priority: program.PriorityInteractive}
	if queue == jobs.QueueBatch {
		opts.Priority = program.PriorityBatch
	}
	var pub *coalescer
	if spec.Options.Stream && !w.cfg.DisableStreaming {
		pub = newCoalescer(att.Token, att.Reset, w.cfg.TokenInterval)
		go pub.run(context.WithoutCancel(runCtx))
		opts.OnChunk = func(field, chunk string) error {
			if err := pub.add(field, chunk); err != nil {
				cancel(stopCause(err))
				return err
			}
			return nil
		}
		opts.OnReset = func(reason string) {
			// Tell clients to drop the partial answer: the next pieces come
			// from another adapter's attempt within this run.
			if err := pub.addReset(reason); err != nil {
				cancel(stopCause(err))
			}
		}
	}

	started := time.Now()
	res, runErr := w.deps.Runner.Run(runCtx, spec.Inputs, opts)
	att.LMCalls = lmCalls(res, runErr)
	if pub != nil {
		if err := pub.close(); err != nil && runErr == nil {
			runErr = err
		}
	}
	if runErr == nil {
		return w.complete(ctx, log, t, att, res, time.Since(started), queue)
	}
	if errors.Is(runErr, store.ErrTerminal) || errors.Is(runErr, store.ErrStale) || errors.Is(context.Cause(runCtx), errCancelled) {
		w.deps.Metrics.observeOutcome(queue, "cancelled")
		log.Info().Msg("job stopped: cancelled, or a newer attempt runs it")
		return asynq.RevokeTask
	}
	v := classify(runCtx, runErr, att.Number, att.Last, defaultBackoff)
	return w.finish(ctx, log, att, v, queue)
}

// stopCause maps a refused token write to the run's cancel cause.
func stopCause(err error) error {
	if errors.Is(err, store.ErrTerminal) {
		return errCancelled
	}
	return err
}

// finalWriteContext is for the record writes made after a run (its result,
// its failure): they must happen even when the run's context is done, and may
// wait out a Redis outage.
func finalWriteContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), writePatience)
}

func (w *Worker) complete(ctx context.Context, log zerolog.Logger, t *asynq.Task, att *store.Attempt, res *RunResult, took time.Duration, queue string) error {
	wctx, cancel := finalWriteContext(ctx)
	defer cancel()
	r := &jobs.Result{
		Outputs: res.Outputs,
		Provenance: jobs.Provenance{
			Model: w.deps.Runner.Model(), StateSHA256: w.deps.Runner.StateSHA256(),
			CacheHit: res.CacheHit, LMCalls: res.LMCalls,
		},
		Usage:          res.Usage,
		LatencySeconds: took.Seconds(),
	}
	if w.cfg.DisableUsage {
		r.Usage = json.RawMessage("null")
	}
	var recorded json.RawMessage
	err := persist(wctx, func(ctx context.Context) (err error) {
		recorded, err = att.Complete(ctx, r, res.Tokens)
		return err
	})
	switch {
	case errors.Is(err, store.ErrTerminal):
		w.deps.Metrics.observeOutcome(queue, "cancelled")
		return asynq.RevokeTask
	case err != nil:
		// The answer is lost with this attempt; run it again.
		return fmt.Errorf("record result: %w", err)
	}
	// The record holds the result; a copy on the asynq task lets the
	// dashboard show answers while the task is retained.
	if _, err := t.ResultWriter().Write(recorded); err != nil {
		log.Debug().Err(err).Msg("write task result for the dashboard")
	}
	w.deps.Metrics.observeOutcome(queue, "completed")
	w.deps.Metrics.observeRun(queue, took)
	log.Info().Int64("took_ms", took.Milliseconds()).Bool("cache_hit", res.CacheHit).Msg("job completed")
	return nil
}

// finish records a failed run's verdict and tells asynq what to do.
func (w *Worker) finish(ctx context.Context, log zerolog.Logger, att *store.Attempt, v verdict, queue string) error {
	wctx, cancel := finalWriteContext(ctx)
	defer cancel()
	var err error
	switch v.action {
	case revoke:
		w.deps.Metrics.observeOutcome(queue, "cancelled")
		return asynq.RevokeTask
	case requeued:
		// One try: the worker is stopping, and the next attempt's start
		// mends a record left running.
		err = att.Defer(wctx, v.reason, 0)
		w.deps.Metrics.observeOutcome(queue, "requeued")
		log.Info().Msg("job put back: worker shutting down")
		if err != nil {
			log.Warn().Err(err).Msg("record requeue")
		}
		return handled{errors.New(v.reason.Message)} // ignored: asynq requeues it itself
	case failNow:
		err = persist(wctx, func(ctx context.Context) error { return att.Fail(ctx, v.reason) })
		w.deps.Metrics.observeOutcome(queue, "failed")
		w.logReason(log.Warn(), v).Msg("job failed")
		if err != nil && !errors.Is(err, store.ErrTerminal) {
			return fmt.Errorf("record failure: %w", err) // retry so the record ends right
		}
		return handled{fmt.Errorf("%w: %s", asynq.SkipRetry, v.reason.Message)}
	case deferLater:
		err = persist(wctx, func(ctx context.Context) error { return att.Defer(ctx, v.reason, v.delay) })
		w.deps.Metrics.observeOutcome(queue, "deferred")
	default:
		err = persist(wctx, func(ctx context.Context) error { return att.Retry(ctx, v.reason, v.delay) })
		w.deps.Metrics.observeOutcome(queue, "retried")
	}
	if errors.Is(err, store.ErrTerminal) || errors.Is(err, store.ErrStale) {
		return asynq.RevokeTask
	}
	w.logReason(log.Info(), v).Int64("retry_in_ms", v.delay.Milliseconds()).Msg("job will run again")
	return handled{&delayedError{delay: v.delay, counted: v.action == retryLater, err: errors.New(v.reason.Message)}}
}
