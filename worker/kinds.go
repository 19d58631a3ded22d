package worker

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
)

// kind is jobs or batch items: what the lifecycle does differently for
// each.
type kind struct {
	// name is how log lines and errors call it.
	name string
	// quiet: its routine ends (completed, deferred, cancelled, refused) log
	// at debug, since a batch has thousands of items.
	quiet bool
	// taskCopy: the task keeps a copy of the result, which the dashboard
	// shows while the task is retained (a job's is, when the store keeps
	// finished tasks: store.Config.TaskRetention; an item's is not).
	taskCopy bool
	// parse reads a task's payload.
	parse func(payload []byte) (task, error)
}

var (
	jobKind  = kind{name: "job", taskCopy: true, parse: parseJob}
	itemKind = kind{name: "batch item", quiet: true, parse: parseItem}
)

// task is a parsed task: a job or a batch item to start.
type task interface {
	// fields adds the ids that name it to a log context.
	fields(zerolog.Context) zerolog.Context
	// start begins its next attempt, filling in a (one script call, which
	// persist repeats through a Redis outage).
	start(ctx context.Context, w *Worker, a *attempt) (startOutcome, error)
}

// startOutcome is what a start decided.
type startOutcome int

const (
	// notStarted: the job or item has ended (cancelled, expired, gave up,
	// done) or is gone; its task is dropped.
	notStarted startOutcome = iota
	started
	// overBudget: its owner's daily token budget is spent; the start has
	// just ended it failed, saying so.
	overBudget
)

// jobTask is a job's task: its id alone (the start reads its spec).
type jobTask struct{ id string }

func parseJob(payload []byte) (task, error) {
	p, err := jobs.ParsePayload(payload)
	return jobTask{id: p.JobID}, err
}

func (j jobTask) fields(c zerolog.Context) zerolog.Context { return c.Str("job_id", j.id) }

func (j jobTask) start(ctx context.Context, w *Worker, a *attempt) (startOutcome, error) {
	var maxWait time.Duration
	if a.queue == jobs.QueueInteractive && w.cfg.InteractiveMaxWait > 0 {
		maxWait = w.cfg.InteractiveMaxWait
	}
	// The task's id is the record's unless a recoverer has put the job back
	// under a new task since: then this one is refused (Foreign).
	taskID, _ := asynq.GetTaskID(ctx)
	att, out, err := w.deps.Store.StartTask(ctx, j.id, taskID, w.cfg.ID, maxWait)
	switch {
	case err != nil:
		return notStarted, err
	case out == store.OverBudget:
		return overBudget, nil
	case out != store.Started:
		return notStarted, nil
	}
	a.sink, a.spec, a.number, a.last, a.lmCalls = att, att.Spec, att.Number, att.Last, &att.LMCalls
	a.stream = att
	a.checkpoint, a.done = att, att.Checkpoints
	a.due = att.Due
	a.runs, a.runID = &w.jobRuns, j.id
	return started, nil
}

// itemTask is a batch item's task: which item of which batch, in which
// retry round (the start reads its spec from the batch).
type itemTask struct{ p jobs.BatchItemPayload }

func parseItem(payload []byte) (task, error) {
	p, err := jobs.ParseBatchItemPayload(payload)
	return itemTask{p: p}, err
}

func (it itemTask) fields(c zerolog.Context) zerolog.Context {
	return c.Str("batch_id", it.p.Batch).Int("index", it.p.Index)
}

// start begins the item's next attempt. The item's start counts its
// attempts and fails it on the last, so a batch never waits for an item
// asynq's recoverer archived.
func (it itemTask) start(ctx context.Context, w *Worker, a *attempt) (startOutcome, error) {
	// As a job's: a task a recoverer replaced is refused.
	taskID, _ := asynq.GetTaskID(ctx)
	att, out, err := w.deps.Batches.StartItemTask(ctx, it.p, taskID, w.cfg.ID)
	switch {
	case err != nil:
		return notStarted, err
	case out == batches.ItemOverBudget:
		return overBudget, nil
	case out != batches.ItemStarted:
		return notStarted, nil
	}
	a.sink, a.spec, a.number, a.last, a.lmCalls = att, att.Spec, att.Number, att.Last, &att.LMCalls
	a.runs, a.runID = &w.batchRuns, it.p.Batch
	if it.p.Fallback {
		a.path = jobs.PathLive
	}
	// The owner is known once the item has started (its payload holds ids
	// alone): an item over its owner's share is given back.
	owner := att.Spec.Owner
	a.hold = func(ctx context.Context) (func(), bool) {
		if !w.shares.acquire(owner, w.shares.isContended(ctx, w.deps.Batches.ActiveOwners)) {
			return nil, false
		}
		return func() { w.shares.release(owner) }, true
	}
	if key, err := att.Spec.Hash(); err == nil && !att.Spec.Options.NoCache {
		a.shareKey = key
	}
	return started, nil
}
