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
	"github.com/qaqueue/qaqueue/program"
	"github.com/rs/zerolog"
)

// Batch items. An item is not a job record: it is a slot in its batch (its
// inputs in the batch's items hash, the rest of its spec in the batch
// record, the result in its results hash), so a
// 50,000-item batch costs one task and two script calls per item, not a
// record, an event stream and five script calls. The item's run reuses the
// job path's pieces: the Runner, classify, the retry/defer errors asynq reads.

// registerBatch adds the batch handlers when the worker has Deps.Batches.
func (w *Worker) registerBatch(mux *asynq.ServeMux) {
	if w.deps.Batches == nil {
		return
	}
	w.shares = newOwnerSlots(w.cfg.BatchOwnerShare, w.cfg.BatchConcurrency)
	mux.HandleFunc(jobs.TaskTypeBatchItem, w.handleBatchItem)
	mux.HandleFunc(jobs.TaskTypeBatchExpand, w.handleBatchExpand)
	mux.HandleFunc(jobs.TaskTypeBatchRequeue, w.handleBatchRequeue)
	mux.HandleFunc(jobs.TaskTypeBatchCheck, w.handleBatchCheck)
}

// batchQueues makes the batch server serve the control queue (expansions,
// window checks) before items.
func batchQueues(c *asynq.Config) {
	c.Queues = map[string]int{jobs.QueueBatchControl: 10, jobs.QueueBatch: 1}
	c.StrictPriority = true
}

// handleBatchItem runs one attempt of a batch item and records its end in
// the batch (never left to asynq's recoverer: the item's start counts its
// attempts and fails it on the last).
func (w *Worker) handleBatchItem(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.ParseBatchItemPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: bad batch item payload: %v", asynq.SkipRetry, err)
	}
	var (
		att *batches.ItemAttempt
		out batches.ItemOutcome
	)
	err = persist(ctx, func(ctx context.Context) (err error) {
		att, out, err = w.deps.Batches.StartItem(ctx, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("start batch item: %w", err)
	}
	switch out {
	case batches.ItemStarted:
	case batches.ItemOverBudget:
		// Counted failed in the batch, which says why; a batch may have
		// thousands, so no line each.
		w.deps.Metrics.observeOutcome(jobs.QueueBatch, "failed")
		return asynq.RevokeTask
	default:
		w.deps.Metrics.observeOutcome(jobs.QueueBatch, "dropped")
		return asynq.RevokeTask
	}
	spec := att.Spec
	log := w.withQuestion(w.log.With().Str("batch_id", p.Batch).Int("index", p.Index).Int("attempt", att.Number),
		spec.Question()).Logger()
	// The owner is known once the item has started (its payload holds ids
	// alone); an item over its share is given back, its start uncounted.
	if !w.shares.acquire(spec.Owner, w.shares.isContended(ctx, w.deps.Batches.ActiveOwners)) {
		wctx, wcancel := finalWriteContext(ctx)
		defer wcancel()
		return w.finishItem(wctx, log, att, verdict{action: deferLater, delay: ownerShareDelay, reason: ownerShare})
	}
	defer w.shares.release(spec.Owner)
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer w.batchRuns.track(p.Batch, cancel)()

	started := time.Now()
	key, err := spec.Hash()
	if err != nil || spec.Options.NoCache {
		key = "" // run alone
	}
	res, runErr := w.batchFlight.do(runCtx, key, func(ctx context.Context) (*RunResult, error) {
		return w.deps.Runner.Run(ctx, spec.Inputs, RunOptions{NoCache: spec.Options.NoCache, Priority: program.PriorityBatch})
	})
	wctx, wcancel := finalWriteContext(ctx)
	defer wcancel()
	if runErr == nil {
		took := time.Since(started)
		r := &jobs.Result{Outputs: res.Outputs, Usage: res.Usage, LatencySeconds: took.Seconds(),
			Provenance: jobs.Provenance{CacheHit: res.CacheHit}}
		err := persist(wctx, func(ctx context.Context) error { _, err := att.Complete(ctx, r, res.Tokens); return err })
		if err != nil && !errors.Is(err, batches.ErrEnded) {
			return fmt.Errorf("record batch item result: %w", err)
		}
		w.deps.Metrics.observeOutcome(jobs.QueueBatch, "completed")
		w.deps.Metrics.observeRun(jobs.QueueBatch, took)
		return nil
	}
	v := classify(runCtx, runErr, att.Number, att.Last, defaultBackoff)
	return w.finishItem(wctx, log, att, v)
}

// finishItem records a failed item run's verdict and tells asynq what to do.
func (w *Worker) finishItem(ctx context.Context, log zerolog.Logger, att *batches.ItemAttempt, v verdict) error {
	switch v.action {
	case revoke:
		if err := persist(ctx, att.Cancelled); err != nil && !errors.Is(err, batches.ErrEnded) {
			return fmt.Errorf("record batch item cancel: %w", err)
		}
		w.deps.Metrics.observeOutcome(jobs.QueueBatch, "cancelled")
		return asynq.RevokeTask
	case requeued:
		if err := att.Defer(ctx); err != nil {
			log.Warn().Err(err).Msg("record batch item requeue")
		}
		return handled{errors.New(v.reason.Message)} // asynq requeues it itself
	case failNow:
		err := persist(ctx, func(ctx context.Context) error { return att.Fail(ctx, v.reason) })
		if err != nil && !errors.Is(err, batches.ErrEnded) {
			return fmt.Errorf("record batch item failure: %w", err)
		}
		w.deps.Metrics.observeOutcome(jobs.QueueBatch, "failed")
		w.logReason(log.Warn(), v).Msg("batch item failed")
		return handled{fmt.Errorf("%w: %s", asynq.SkipRetry, v.reason.Message)}
	case deferLater:
		if err := persist(ctx, att.Defer); err != nil {
			return fmt.Errorf("record batch item defer: %w", err)
		}
		w.deps.Metrics.observeOutcome(jobs.QueueBatch, "deferred")
		w.logReason(log.Debug(), v).Dur("retry_in", v.delay).Msg("batch item put back")
		return handled{&delayedError{delay: v.delay, counted: false, err: errors.New(v.reason.Message)}}
	}
	w.deps.Metrics.observeOutcome(jobs.QueueBatch, "retried")
	w.logReason(log.Info(), v).Dur("retry_in", v.delay).Msg("batch item will run again")
	return handled{&delayedError{delay: v.delay, counted: true, err: errors.New(v.reason.Message)}}
}

// uploadCommitWait is how long an expansion that found its upload not yet
// committed waits before it looks again (asynq adds a second; see
// notBefore).
const uploadCommitWait = time.Second

// handleBatchExpand turns a batch's items into tasks; on error asynq runs it
// again and it resumes from the recorded cursor.
func (w *Worker) handleBatchExpand(ctx context.Context, t *asynq.Task) error {
	var p jobs.BatchTaskPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BatchID == "" {
		return fmt.Errorf("%w: bad batch payload: %v", asynq.SkipRetry, err)
	}
	_, err := w.deps.Batches.Expand(ctx, p.BatchID, 0)
	switch {
	case errors.Is(err, batches.ErrUploading):
		// Enqueued just before its upload's commit: wait for it, without
		// spending the task's retries. If the uploading process died first,
		// the upload's keys expire and the next look ends the task.
		w.log.Debug().Str("batch_id", p.BatchID).Msg("batch expansion waits for its upload's commit")
		return handled{&delayedError{delay: uploadCommitWait, counted: false, err: err}}
	case err != nil:
		return fmt.Errorf("expand batch %s: %w", p.BatchID, err)
	}
	return nil
}

// handleBatchRequeue enqueues a retry round's items (see batches.Store.Requeue).
func (w *Worker) handleBatchRequeue(ctx context.Context, t *asynq.Task) error {
	var p jobs.BatchTaskPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BatchID == "" || p.Round < 1 {
		return fmt.Errorf("%w: bad batch requeue payload: %v", asynq.SkipRetry, err)
	}
	return w.deps.Batches.Requeue(ctx, p.BatchID, p.Round)
}

// handleBatchCheck ends a batch whose completion window has passed.
func (w *Worker) handleBatchCheck(ctx context.Context, t *asynq.Task) error {
	var p jobs.BatchTaskPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BatchID == "" {
		return fmt.Errorf("%w: bad batch payload: %v", asynq.SkipRetry, err)
	}
	return w.deps.Batches.CheckWindow(ctx, p.BatchID)
}
