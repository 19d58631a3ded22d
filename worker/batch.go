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
)

// Batches. An item is not a job record: it is a slot in its batch (its
// inputs in the batch's items hash, the rest of its spec in the batch
// record, the result in its results hash), so a 50,000-item batch costs one
// task and two script calls per item, not a record, an event stream and
// five script calls. An item runs the job's lifecycle (handler.go), started
// and settled through the batch (itemTask, batches.ItemAttempt); this file
// has the batch's own tasks: expanding its items into tasks, requeueing a
// retry round's, and ending it when its window passes.

// registerBatch adds the batch handlers when the worker has Deps.Batches.
func (w *Worker) registerBatch(mux *asynq.ServeMux) {
	if w.deps.Batches == nil {
		return
	}
	w.shares = newOwnerSlots(w.cfg.BatchOwnerShare, w.cfg.BatchConcurrency)
	mux.HandleFunc(jobs.TaskTypeBatchItem, w.handler(itemKind))
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
