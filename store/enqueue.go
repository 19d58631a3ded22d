package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
)

// ErrUnavailable: Redis failed while a task was being enqueued (answer
// 503). asynq reports a failed EVAL as text, without the network error
// that caused it, so callers could not tell it from a bug otherwise.
var ErrUnavailable = errors.New("storage unavailable")

// Enqueue adds a task. A task id already in use counts as done: where a step
// may run twice its task ids are deterministic, so the task is there. Every
// other error asynq returns comes from a Redis command that failed, which
// asynq reports as text only, so it is marked ErrUnavailable (answer 503).
func Enqueue(ctx context.Context, aq *asynq.Client, t *asynq.Task, opts ...asynq.Option) error {
	_, err := aq.EnqueueContext(ctx, t, opts...)
	if err == nil || errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// crashSlack is how many more runs asynq allows than we do. Our handler counts
// attempts in the record and fails the job itself on the last one, so asynq's
// recoverer (which spends a retry per lost lease) never archives a task
// without the record saying why.
const crashSlack = 5

// TaskMaxRetry is asynq's MaxRetry for a task that runs a job or a batch
// item: MaxAttempts runs, and crashSlack more.
func (c Config) TaskMaxRetry() int { return c.MaxAttempts - 1 + crashSlack }
