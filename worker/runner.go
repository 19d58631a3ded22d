package worker

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/store"
)

// Runner runs the program on a job's inputs (its spec's). ProgramRunner is
// the real one.
type Runner interface {
	Run(ctx context.Context, inputs jobs.Inputs, opts RunOptions) (*RunResult, error)
	// Model is the DSPy model string, for provenance.
	Model() string
	// StateSHA256 identifies the program state, for provenance.
	StateSHA256() string
}

// RunOptions are per-job settings of a run.
type RunOptions struct {
	// Options are the job spec's, whole: an option added to jobs.Options
	// reaches the runner with no change to the worker's lifecycle.
	Options  jobs.Options
	Priority program.Priority
	// OnChunk receives streamed pieces of output fields; nil: no streaming.
	// An error stops the run (the job was cancelled or superseded).
	OnChunk func(field, chunk string) error
	// OnReset is called when pieces already streamed are abandoned (the
	// program falls back to another adapter).
	OnReset func(reason string)

	// Program and ProgramVersion name the program to run: the spec's
	// (an "@alias" suffix is ignored; "" is qa).
	Program, ProgramVersion string
	// Done are the stages of a multi-stage program that earlier attempts
	// finished, from the first, as their checkpoints hold them: the run
	// resumes after them without calling the LM for them again.
	Done []jobs.Checkpoint
	// OnStageStart is called as each stage of a multi-stage program starts
	// running: the chunks and resets that follow are that stage's. Not
	// called for a single-stage program.
	OnStageStart func(stage string)
	// OnStage is called with each stage of a multi-stage program that has
	// just finished (index from 0), before the next starts; an error stops
	// the run with it. Not called for a single-stage program, nor for the
	// stages in Done.
	OnStage func(ctx context.Context, index int, cp *jobs.Checkpoint) error
	// StageTook is told how long each stage that ran to an answer took
	// (single-stage programs too; not the stages in Done): the stage
	// latency metric. nil: not told.
	StageTook func(stage string, took time.Duration)
}

// RunResult is a successful run.
type RunResult struct {
	// Outputs are the program's output fields in its signature's order.
	Outputs jobs.Outputs
	Usage   json.RawMessage
	// Tokens is Usage's total_tokens over its models, counted before it was
	// encoded: what the run costs its owner's daily budget.
	Tokens   int64
	CacheHit bool
	// LMCalls counts the run's LM calls, failed ones included.
	LMCalls int
	// StateSHA256 is the run's program state; "" leaves the result the
	// Runner's.
	StateSHA256 string
	// Stages are a multi-stage program's stages, each with its usage
	// (Usage is their total); nil for a single-stage program.
	Stages []jobs.StageUsage
	// Cache, when set, stores the LM answers the run accepted in the LM
	// cache: the worker calls it once the result is recorded, so the
	// cache's write is not on the answer's path.
	Cache func(ctx context.Context) error
	// CacheWrites, when set, is Cache with its writes to the queue's Redis
	// handed back, for the result's own write to carry
	// (store.Attempt.Cache): a round trip fewer. Cache then has nothing
	// left to write.
	CacheWrites func(ctx context.Context) ([]store.CacheEntry, error)
}

// RunError is a failed run that called the LM: the calls count toward the
// job's lm_calls, as they may have cost tokens.
type RunError struct {
	Err     error
	LMCalls int
}

func (e *RunError) Error() string { return e.Err.Error() }

func (e *RunError) Unwrap() error { return e.Err }

// lmCalls is how many LM calls a run made, from its result or its error.
func lmCalls(res *RunResult, err error) int {
	var re *RunError
	switch {
	case res != nil:
		return res.LMCalls
	case errors.As(err, &re):
		return re.LMCalls
	}
	return 0
}
