package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programrun"
	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// The lifecycle of a job and of a batch item, one path for both: parse the
// task → start the attempt → run the program → settle the verdict. asynq
// may run a task more than once; the job record or the batch (one Lua
// script each: terminal states final, a result slot filled once) makes
// every effect happen once. What differs between the two is in kinds.go.

// attempt is one run of a job or a batch item as the lifecycle drives it:
// what its start read, and where its end is written.
type attempt struct {
	kind  kind
	queue string
	log   zerolog.Logger

	// Set by a start (kinds.go).
	sink   sink
	spec   jobs.Spec
	number int
	last   bool
	// lmCalls is the sink's count of this attempt's LM calls, which its
	// writes add to the job's or the item's; the run sets it.
	lmCalls *int
	// stream takes the answer's pieces as they come; nil: none are
	// published.
	stream streamer
	// checkpoint records a multi-stage job's finished stages, which done
	// holds from earlier attempts; nil: none are recorded (a batch item
	// runs every stage in one attempt).
	checkpoint checkpointer
	done       []jobs.Checkpoint
	// runs and runID are where a cancel notice reaches the run.
	runs  *runs
	runID string
	// hold, when set, takes a slot for the run or refuses it (an owner's
	// share of the batch slots); release gives it back.
	hold func(context.Context) (release func(), ok bool)
	// shareKey lets runs asking the same share one (flight); "" runs alone.
	shareKey string
	// path is the result's answer path (jobs.Provenance.Path): a
	// provider-mode batch's item handed to the live path says so.
	path string
	// due is when a job's attempt became due (store.Attempt.Due); zero
	// for a batch item's.
	due time.Time

	// span is the attempt's process span (tracing.go); nil untraced.
	span trace.Span
	// outcome is the outcome settle counted (observe): the span names it.
	outcome string
}

// handler runs the tasks of kind k.
func (w *Worker) handler(k kind) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		began := time.Now()
		task, err := k.parse(t.Payload())
		if err != nil {
			// Nothing to record without an id: archive with the reason.
			return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
		}
		queue, _ := asynq.GetQueueName(ctx)
		a := &attempt{kind: k, queue: queue, log: task.fields(w.log.With()).Logger()}
		var out startOutcome
		err = persist(ctx, func(ctx context.Context) (err error) {
			out, err = task.start(ctx, w, a)
			return err
		})
		if err != nil {
			return fmt.Errorf("start %s: %w", k.name, err) // Redis trouble: asynq retries
		}
		v := verdict{action: dropped}
		switch out {
		case started:
			a.log = w.withQuestion(a.log.With().Int("attempt", a.number).Str("queue", queue), a.spec.Question()).Logger()
			if w.tracer != nil {
				ctx = w.traceAttempt(ctx, a, began)
			}
			v = w.run(ctx, a)
		case overBudget:
			v = verdict{action: refused}
		}
		err = w.settle(ctx, t, a, v)
		if a.span != nil {
			endAttempt(a, v, err)
		}
		return err
	}
}

// run runs the program for a started attempt and says how it went.
func (w *Worker) run(ctx context.Context, a *attempt) verdict {
	if len(a.spec.Inputs) == 0 {
		return verdict{action: failNow, reason: &jobs.Error{Code: "invalid_payload", Message: "the " + a.kind.name + "'s spec has no inputs"}}
	}
	if a.hold != nil {
		release, ok := a.hold(ctx)
		if !ok {
			// Given back, its start uncounted, to run when a slot is free.
			return verdict{action: deferLater, delay: ownerShareDelay, reason: ownerShare}
		}
		defer release()
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer a.runs.track(a.runID, cancel)()

	opts := RunOptions{Options: a.spec.Options, Priority: program.PriorityInteractive,
		Program: a.spec.Program, ProgramVersion: a.spec.ProgramVersion, Done: a.done}
	if a.queue == jobs.QueueBatch {
		opts.Priority = program.PriorityBatch
	}
	if m := w.deps.Metrics; m != nil {
		name := programrun.ProgramName(a.spec.Program)
		opts.StageTook = func(stage string, took time.Duration) { m.observeStage(name, stage, took) }
	}
	var pub *coalescer
	if a.stream != nil && a.spec.Options.Stream && !w.cfg.DisableStreaming {
		pub = newCoalescer(a.stream.StageToken, a.stream.StageReset, w.cfg.TokenInterval)
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
		opts.OnStageStart = pub.setStage
	}
	if a.checkpoint != nil {
		opts.OnStage = func(ctx context.Context, index int, cp *jobs.Checkpoint) error {
			if pub != nil {
				// The stage's text goes out before its stage_completed.
				if err := pub.sync(ctx); err != nil {
					return err
				}
			}
			err := persist(ctx, func(ctx context.Context) error { return a.checkpoint.Checkpoint(ctx, index, cp) })
			if ended(err) {
				cancel(stopCause(err))
			}
			return err
		}
	}

	started := time.Now()
	res, err := w.shared.do(runCtx, a.shareKey, func(ctx context.Context) (*RunResult, error) {
		res, err := w.deps.Runner.Run(ctx, a.spec.Inputs, opts)
		if err == nil && a.shareKey != "" && res.Cache != nil {
			// A repeat that starts once the flight is over reads the LM
			// cache: fill it before the flight lets repeats go their own way
			// (settle's deferred Cache then finds nothing left).
			if cerr := res.Cache(context.WithoutCancel(ctx)); cerr != nil {
				a.log.Warn().Err(cerr).Msg("cache the LM's answers")
			}
		}
		return res, err
	})
	*a.lmCalls = lmCalls(res, err)
	if pub != nil {
		var perr error
		if err == nil {
			// The last pieces go with the result.
			var trail []store.Piece
			trail, perr = pub.closeHolding()
			a.stream.Trail(trail)
		} else {
			perr = pub.close()
		}
		if perr != nil && err == nil {
			err = perr
		}
	}
	switch {
	case err == nil:
		return verdict{action: completed, run: res, took: time.Since(started)}
	case ended(err):
		return verdict{action: revoke} // a token write was refused: cancelled, or a newer attempt runs it
	}
	return classify(runCtx, err, a.number, a.last, defaultBackoff)
}

// stopCause maps a refused token write to the run's cancel cause.
func stopCause(err error) error {
	if errors.Is(err, store.ErrTerminal) {
		return errCancelled
	}
	return err
}
