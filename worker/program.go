package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/qaqueue/qaqueue/programrun"
	"github.com/qaqueue/qaqueue/store"
)

// ProgramRunner runs the programs of a Programs source against an LM: the
// stages of a job's program in order, each one predictor run with DSPy's
// ChatAdapter and JSON fallback.
type ProgramRunner struct {
	programs Programs
	lm       program.LM
}

// NewRunner returns a Runner for the programs of ps on lm.
func NewRunner(ps Programs, lm program.LM) *ProgramRunner {
	return &ProgramRunner{programs: ps, lm: lm}
}

// NewProgramRunner returns a Runner serving p, the QA program (with its
// state), as the built-in qa program: NewRunner with a StaticPrograms of
// BuiltinQA(p).
func NewProgramRunner(p *program.Program, lm program.LM) *ProgramRunner {
	qa, err := BuiltinQA(p)
	if err != nil {
		panic("worker: " + err.Error()) // p is not a QA program: a caller's bug
	}
	return NewRunner(StaticPrograms{{Name: jobs.ProgramQA}: qa}, lm)
}

// LM is the LM the runner calls.
func (r *ProgramRunner) LM() program.LM { return r.lm }

// Model is the LM's DSPy model string.
func (r *ProgramRunner) Model() string { return r.lm.Model() }

// StateSHA256 is the built-in qa program's state sha256 ("" when the
// source has none); a run's result names its own program's (RunResult).
func (r *ProgramRunner) StateSHA256() string {
	c, err := r.programs.Program(context.Background(), jobs.ProgramQA, "")
	if err != nil {
		return ""
	}
	return c.Program.Provenance()
}

// Run runs the program opts names on inputs: its stages in order, from the
// first one opts.Done lacks, each stage's inputs taken from the program's
// inputs and earlier stages' outputs as the program binds them. A failed
// run that called the LM returns a *RunError counting the calls.
func (r *ProgramRunner) Run(ctx context.Context, inputs jobs.Inputs, opts RunOptions) (*RunResult, error) {
	c, err := r.programs.Program(ctx, programrun.ProgramName(opts.Program), opts.ProgramVersion)
	if err != nil {
		return nil, fmt.Errorf("get program: %w", err)
	}
	lm := &countingLM{LM: r.lm}
	res, err := runStages(ctx, c, lm, inputs, opts)
	if err != nil {
		// What stages the program accepted before it failed is cached now:
		// nothing is recorded first.
		_ = lm.cache(context.WithoutCancel(ctx))
		if n := int(lm.calls.Load()); n > 0 {
			return nil, &RunError{Err: err, LMCalls: n}
		}
		return nil, err
	}
	res.LMCalls = int(lm.calls.Load())
	res.Cache = lm.cache
	res.CacheWrites = lm.cacheWrites
	return res, nil
}

// runStages runs c's stages, resuming after opts.Done.
func runStages(ctx context.Context, c *programfile.Compiled, lm *countingLM, inputs jobs.Inputs, opts RunOptions) (*RunResult, error) {
	stages := c.Built.Stages
	multi := len(stages) > 1
	done := make(map[string]*programrun.Stage, len(stages))
	runs := make([]*programrun.Stage, 0, len(stages))
	for i, st := range stages {
		var sr *programrun.Stage
		var err error
		if multi && i < len(opts.Done) && opts.Done[i].Stage == st.Key && len(opts.Done[i].Values) > 0 {
			sr, err = programrun.Resumed(opts.Done[i])
		} else {
			sr, err = runStage(ctx, c, lm, st, programrun.Inputs(st, inputs, done), multi, opts)
			if err == nil && multi && opts.OnStage != nil {
				err = opts.OnStage(ctx, i, &sr.Checkpoint)
			}
		}
		if err != nil {
			if multi {
				return nil, fmt.Errorf("stage %s: %w", st.Key, err)
			}
			return nil, err
		}
		done[st.Key] = sr
		runs = append(runs, sr)
	}
	res, err := programrun.Assemble(c, runs, multi)
	if err != nil {
		return nil, err
	}
	return &RunResult{Outputs: res.Outputs, Usage: res.Usage, Tokens: res.Tokens, CacheHit: res.CacheHit,
		StateSHA256: res.StateSHA256, Stages: res.Stages}, nil
}

// runStage runs one stage's predictor, in a span of its own when the run
// is traced (tracing.go); a stage resumed from its checkpoint is not run,
// so it has none.
func runStage(ctx context.Context, c *programfile.Compiled, lm *countingLM, st programfile.Stage, in map[string]any, multi bool, opts RunOptions) (*programrun.Stage, error) {
	po := &program.RunOptions{NoCache: opts.Options.NoCache, Priority: opts.Priority, OnReset: opts.OnReset}
	if opts.OnChunk != nil {
		pred, ok := c.Program.Predict(st.Key)
		if !ok {
			return nil, fmt.Errorf("run stage: no predictor %q", st.Key)
		}
		for _, f := range pred.Signature().Outputs() {
			if f.Type.IsStr() { // only exactly str streams: chunks add up to the value
				po.StreamFields = append(po.StreamFields, f.Name)
			}
		}
		// A refused chunk cancels the run's context (see handle), which ends
		// the LM call; the program's callback has no error to return.
		po.OnChunk = func(field, chunk string) { _ = opts.OnChunk(field, chunk) }
	}
	if multi && opts.OnStageStart != nil {
		opts.OnStageStart(st.Key)
	}
	calls := lm.calls.Load()
	sctx, span := traceStage(ctx, st.Key)
	began := time.Now()
	res, err := c.Program.RunStage(sctx, lm, st.Key, in, po)
	endStage(sctx, span, err)
	if err != nil {
		return nil, err
	}
	if opts.StageTook != nil {
		opts.StageTook(st.Key, time.Since(began))
	}
	return programrun.Finished(st.Key, res, int(lm.calls.Load()-calls), multi)
}

// countingLM counts a run's LM calls, failed ones included: a call cut off
// mid-answer has cost tokens. A call the rate limiter refused before sending
// it is not counted.
type countingLM struct {
	program.LM
	calls atomic.Int32

	mu       sync.Mutex
	accepted []acceptance
}

// acceptance is a completion the program accepted (program.LM.Accept).
type acceptance struct {
	req  *program.Request
	comp *program.Completion
}

// Accept keeps what the program accepted for cache: the LM cache's write
// waits until the run's result is recorded, off the answer's path.
func (c *countingLM) Accept(_ context.Context, req *program.Request, comp *program.Completion) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.accepted = append(c.accepted, acceptance{req, comp})
	return nil
}

// take hands over what the program accepted, once.
func (c *countingLM) take() []acceptance {
	c.mu.Lock()
	defer c.mu.Unlock()
	accepted := c.accepted
	c.accepted = nil
	return accepted
}

// cache passes what the program accepted to the LM (its cache), once.
func (c *countingLM) cache(ctx context.Context) error {
	var errs []error
	for _, a := range c.take() {
		errs = append(errs, c.LM.Accept(ctx, a.req, a.comp))
	}
	return errors.Join(errs...)
}

// writeHandingLM is an LM whose cache hands its writes to the queue's
// Redis to the caller (lmclient.Client).
type writeHandingLM interface {
	AcceptWrite(ctx context.Context, req *program.Request, comp *program.Completion) (lmclient.CacheWrite, bool, error)
}

// cacheWrites is cache with the LM's writes to the queue's Redis handed
// back instead of made, for the result's write to carry; an LM that cannot
// hand them back writes them, as cache does.
func (c *countingLM) cacheWrites(ctx context.Context) ([]store.CacheEntry, error) {
	lm, ok := c.LM.(writeHandingLM)
	if !ok {
		return nil, c.cache(ctx)
	}
	var entries []store.CacheEntry
	var errs []error
	for _, a := range c.take() {
		w, ok, err := lm.AcceptWrite(ctx, a.req, a.comp)
		errs = append(errs, err)
		if ok {
			entries = append(entries, store.CacheEntry{Key: w.Key, Value: w.Value, TTL: w.TTL})
		}
	}
	return entries, errors.Join(errs...)
}

func (c *countingLM) Complete(ctx context.Context, req *program.Request) (*program.Completion, error) {
	comp, err := c.LM.Complete(ctx, req)
	var rl *lmclient.RateLimitedError
	if !errors.As(err, &rl) {
		c.calls.Add(1)
	}
	return comp, err
}
