package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// Submit errors.
var (
	// ErrQueueFull: too many interactive jobs are waiting (answer 503).
	ErrQueueFull = errors.New("queue is full")
	// ErrIdempotencyInProgress: a request with the same Idempotency-Key is
	// still being accepted (answer 409).
	ErrIdempotencyInProgress = errors.New("a request with this Idempotency-Key is in progress")
	// ErrIdempotencyMismatch: the Idempotency-Key was used with another body
	// (answer 422).
	ErrIdempotencyMismatch = errors.New("Idempotency-Key was already used with a different request body")
)

const abortTimeout = 2 * time.Second

// acceptTimeout is how long a submit with an Idempotency-Key may take between
// writing the record and marking it enqueued. A replay within it is told the
// first request is in progress (409); after it, the first request is taken
// for dead (its process crashed, or Redis failed between the steps) and the
// replay submits afresh, so the key cannot stay stuck. It is far above what
// a live submit takes: three Redis round trips.
const acceptTimeout = 30 * time.Second

// pendingListKey is asynq's pending list for a queue (asynq v0.26 key layout);
// the submit script reads its length to enforce Config.MaxPending without an
// extra round trip.
func pendingListKey(queue string) string { return "asynq:{" + queue + "}:pending" }

// Client submits and manages jobs: the API side of the contract.
type Client struct {
	store *Jobs
	aq    *asynq.Client
	insp  *asynq.Inspector
}

// NewClient returns a Client that enqueues through rdb. It owns no
// connections of its own: closing rdb is the caller's business.
func NewClient(rdb redis.UniversalClient, jobStore *Jobs) *Client {
	return &Client{store: jobStore, aq: asynq.NewClientFromRedisClient(rdb), insp: asynq.NewInspectorFromRedisClient(rdb)}
}

// Jobs returns the job records the client writes.
func (c *Client) Jobs() *Jobs { return c.store }

// SubmitRequest is one job to run.
type SubmitRequest struct {
	// Spec is what it runs; its Queue is jobs.QueueInteractive when empty.
	Spec jobs.Spec
	// IdempotencyKey, when set, makes a replay of the same request (the same
	// spec.Hash) return the same job.
	IdempotencyKey string
}

// Submitted is what Submit did.
type Submitted struct {
	Job *jobs.Job
	// Replayed is true when the Idempotency-Key named an existing job.
	Replayed bool
}

// Submit writes the job record (with its idempotency key) and enqueues the
// task. The job is accepted only when Submit returns without error: if the
// enqueue fails, the record is removed again.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (*Submitted, error) {
	return c.submit(ctx, req, jobs.NewJobID())
}

// submit is Submit of a job with the id given (a new one).
func (c *Client) submit(ctx context.Context, req SubmitRequest, id string) (*Submitted, error) {
	spec := req.Spec
	if spec.Queue == "" {
		spec.Queue = jobs.QueueInteractive
	}
	body, err := jobs.Payload{JobID: id}.Marshal()
	if err != nil {
		return nil, fmt.Errorf("submit job: %w", err)
	}
	stored, err := spec.Marshal()
	if err != nil {
		return nil, fmt.Errorf("submit job: %w", err)
	}
	idemKey, bodyHash := "", ""
	if req.IdempotencyKey != "" {
		kh := sha256.Sum256([]byte(req.IdempotencyKey))
		idemKey = jobs.IdempotencyKey(spec.Owner, hex.EncodeToString(kh[:]))
		if bodyHash, err = spec.Hash(); err != nil {
			return nil, fmt.Errorf("submit job: %w", err)
		}
	}
	pending := ""
	maxPending := 0
	if spec.Queue == jobs.QueueInteractive && c.store.cfg.MaxPending > 0 {
		pending, maxPending = pendingListKey(spec.Queue), c.store.cfg.MaxPending
	}
	// The owner is also a field of its own: the scripts read it without
	// decoding the spec, and an API replica of release 114e39c, serving
	// beside this one during a rolling upgrade, checks it.
	fields := []any{"spec", string(stored), "owner", spec.Owner}
	if idemKey != "" {
		fields = append(fields, "enqueued", "0")
	}
	args := append([]any{ms(c.store.cfg.PendingTTL), ms(c.store.cfg.IdempotencyTTL), bodyHash, maxPending,
		ms(acceptTimeout), queuedData(spec.Queue)}, fields...)
	now := c.store.now()
	createdAt := time.UnixMilli(now.UnixMilli()).UTC() // as the record stores it
	reply, err := c.store.runAt(ctx, now, "create", id, [2]string{idemKey, pending}, args...)
	if err != nil {
		return nil, fmt.Errorf("submit job: %w", err)
	}
	switch reply[0] {
	case "full":
		return nil, ErrQueueFull
	case "mismatch":
		return nil, ErrIdempotencyMismatch
	case "in_progress":
		return nil, ErrIdempotencyInProgress
	case "duplicate":
		j, err := c.store.Get(ctx, reply[1])
		if err != nil {
			return nil, fmt.Errorf("submit job: read replayed job: %w", err)
		}
		return &Submitted{Job: j, Replayed: true}, nil
	}

	task := asynq.NewTask(jobs.TaskTypePredict, body)
	err = Enqueue(ctx, c.aq, task, c.store.cfg.taskOptions(id, spec.Queue)...)
	if err != nil {
		// Not accepted: take the record back so nothing waits on it. Use a
		// context that outlives a cancelled request.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, _ = c.store.run(cctx, "abort", id, [2]string{idemKey, ""})
		return nil, fmt.Errorf("submit job: enqueue: %w", err)
	}
	if idemKey != "" {
		if _, err := c.store.run(ctx, "enqueued", id, [2]string{}); err != nil {
			return nil, fmt.Errorf("submit job: %w", err)
		}
	}
	// The record is exactly what the create script wrote: no need to read
	// it back (one round trip less per submit).
	return &Submitted{Job: &jobs.Job{ID: id, Status: jobs.StatusQueued, Spec: spec, CreatedAt: createdAt}}, nil
}

// Cancel ends a job that has not ended, tells its worker, and removes a
// waiting task from its queue. It returns the job as it now is.
func (c *Client) Cancel(ctx context.Context, id string) (*jobs.Job, error) {
	prev, taskID, err := c.store.cancel(ctx, id)
	if err != nil && !errors.Is(err, ErrTerminal) {
		return nil, err
	}
	j, gerr := c.store.Get(ctx, id)
	if gerr != nil {
		return nil, gerr
	}
	if err == nil && prev != jobs.StatusRunning {
		// Best effort: a task left in the queue is revoked when a worker
		// reaches it, because the record has ended. The task is the
		// record's: a recovered job's is no longer the one Submit enqueued.
		_ = c.insp.DeleteTask(j.Spec.Queue, taskID)
	}
	return j, err
}

// Delete cancels a job that has not ended, then removes its record, events and
// task.
func (c *Client) Delete(ctx context.Context, id string) error {
	j, err := c.store.Get(ctx, id)
	if err != nil {
		return err
	}
	if !j.Status.Terminal() {
		if _, err := c.Cancel(ctx, id); err != nil && !errors.Is(err, ErrTerminal) {
			return err
		}
	}
	taskID, err := c.store.delete(ctx, id)
	if err != nil {
		return err
	}
	_ = c.insp.DeleteTask(j.Spec.Queue, taskID)
	return nil
}

// queuedDataOf holds the queued event's data of the queues jobs are
// submitted to, rendered once instead of on every submit.
var queuedDataOf = map[string]string{
	jobs.QueueInteractive: mustJSON(jobs.QueuedData{Queue: jobs.QueueInteractive}),
	jobs.QueueBatch:       mustJSON(jobs.QueuedData{Queue: jobs.QueueBatch}),
}

// queuedData is the data of a job's queued event on queue.
func queuedData(queue string) string {
	if d, ok := queuedDataOf[queue]; ok {
		return d
	}
	return mustJSON(jobs.QueuedData{Queue: queue})
}
