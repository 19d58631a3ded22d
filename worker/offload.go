package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"go.opentelemetry.io/otel/trace"
)

// Provider-mode batches. A batch whose LM calls go to the provider's batch
// API has one task, jobs.TaskTypeBatchOffload on jobs.QueueBatchProvider,
// which the offload runner (package offload) moves on a step at a time: it
// uploads, creates, looks at and downloads the batch's provider batches.
// The queue has a small server of its own (Config.ProviderConcurrency
// slots): an upload or a download of a 200 MB provider file holds its slot
// for minutes, and on the batch server it would hold one of the item slots
// BATCH_CONCURRENCY counts, or wait behind thousands of items for one.

// Offloader runs a provider-mode batch's offload task (offload.Runner).
type Offloader interface {
	// Run moves the batch's provider work on; wait > 0 asks to run again
	// after wait (its provider batches still run), 0 that none is left.
	Run(ctx context.Context, batchID string) (wait time.Duration, err error)
}

// errProviderRunning is why an offload task runs again later: its provider
// batches are still running.
var errProviderRunning = errors.New("provider batches still running")

// registerOffload adds the offload handler and its server when the worker
// has Deps.Offload (and Deps.Batches, which it records through).
func (w *Worker) registerOffload(mux *asynq.ServeMux) {
	if w.deps.Offload == nil || w.deps.Batches == nil || w.cfg.ProviderConcurrency < 0 {
		return
	}
	mux.HandleFunc(jobs.TaskTypeBatchOffload, w.handleBatchOffload)
	w.provider = asynq.NewServerFromRedisClient(&wakeClient{UniversalClient: w.deps.Redis, stop: w.stop},
		w.serverConfig(jobs.QueueBatchProvider, w.cfg.ProviderConcurrency, time.Second))
	w.inspector = asynq.NewInspectorFromRedisClient(w.deps.Redis)
}

// handleBatchOffload runs one step of a provider-mode batch. A wait comes
// back as an uncounted delayed retry of the same task, not a new task: the
// batch's one task id stays the only one, so a worker killed between
// scheduling the next look and ending this one cannot start a second
// runner of the batch, and a look never holds a slot while it waits.
func (w *Worker) handleBatchOffload(ctx context.Context, t *asynq.Task) error {
	var p jobs.OffloadPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("%w: bad offload payload: %v", asynq.SkipRetry, err)
	}
	if p.BatchID == "" {
		return fmt.Errorf("%w: bad offload payload: no batch_id", asynq.SkipRetry)
	}
	var span trace.Span
	if w.tracer != nil {
		ctx, span = w.traceOffload(ctx, p.BatchID)
	}
	wait, err := w.deps.Offload.Run(ctx, p.BatchID)
	if span != nil {
		endOffload(span, wait, err)
	}
	switch {
	case err != nil:
		return fmt.Errorf("offload batch %s: %w", p.BatchID, err)
	case wait > 0:
		w.log.Debug().Str("batch_id", p.BatchID).Dur("wait", wait).Msg("provider batches still running")
		return handled{&delayedError{delay: wait, counted: false, err: errProviderRunning}}
	}
	return nil
}

// wakeOffload runs a provider-mode batch's offload task now if it is
// waiting to look at its provider batches again: a cancel should not wait
// up to PROVIDER_POLL_MAX to reach the provider. Best effort: most batches
// are live and have no such task.
func (w *Worker) wakeOffload(id string) {
	if w.inspector == nil || !strings.HasPrefix(id, "batch_") {
		return
	}
	// asynq's Inspector takes no context; the call is small and local.
	_ = w.inspector.RunTask(jobs.QueueBatchProvider, batches.OffloadTaskID(id))
}
