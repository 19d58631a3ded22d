package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
)

// ProgramRunner runs a DSPy-compatible program against an LM.
type ProgramRunner struct {
	program *program.Program
	lm      program.LM
	stream  []string // the str output fields, streamed when a job asks
}

// NewProgramRunner returns a Runner for p on lm.
func NewProgramRunner(p *program.Program, lm program.LM) *ProgramRunner {
	r := &ProgramRunner{program: p, lm: lm}
	for _, f := range p.Predictor().Predict.Signature().Outputs() {
		if f.Type.IsStr() {
			r.stream = append(r.stream, f.Name)
		}
	}
	return r
}

// Model is the LM's DSPy model string.
func (r *ProgramRunner) Model() string { return r.lm.Model() }

// StateSHA256 is the program state's sha256.
func (r *ProgramRunner) StateSHA256() string { return r.program.Provenance() }

// Run runs the program on inputs. A failed run that called the LM returns a
// *RunError counting the calls.
func (r *ProgramRunner) Run(ctx context.Context, inputs jobs.Inputs, opts RunOptions) (*RunResult, error) {
	lm := &countingLM{LM: r.lm}
	po := &program.RunOptions{NoCache: opts.Options.NoCache, Priority: opts.Priority, OnReset: opts.OnReset}
	if opts.OnChunk != nil {
		po.StreamFields = r.stream
		// A refused chunk cancels the run's context (see handle), which ends
		// the LM call; the program's callback has no error to return.
		po.OnChunk = func(field, chunk string) { _ = opts.OnChunk(field, chunk) }
	}
	res, err := r.program.Run(ctx, lm, inputs, po)
	if err != nil {
		if n := int(lm.calls.Load()); n > 0 {
			return nil, &RunError{Err: err, LMCalls: n}
		}
		return nil, err
	}
	outputs := make(jobs.Outputs, 0, res.Outputs.Len())
	for _, k := range res.Outputs.Keys() { // the signature's order
		v, _ := res.Outputs.Get(k)
		outputs = append(outputs, jobs.Output{Name: k, Value: v})
	}
	usage, err := json.Marshal(res.Usage)
	if err != nil {
		return nil, fmt.Errorf("encode usage: %w", err)
	}
	return &RunResult{Outputs: outputs, Usage: usage, Tokens: res.TotalTokens(), CacheHit: res.CacheHit, LMCalls: int(lm.calls.Load())}, nil
}

// countingLM counts a run's LM calls, failed ones included: a call cut off
// mid-answer has cost tokens. A call the rate limiter refused before sending
// it is not counted.
type countingLM struct {
	program.LM
	calls atomic.Int32
}

func (c *countingLM) Complete(ctx context.Context, req *program.Request) (*program.Completion, error) {
	comp, err := c.LM.Complete(ctx, req)
	var rl *lmclient.RateLimitedError
	if !errors.As(err, &rl) {
		c.calls.Add(1)
	}
	return comp, err
}
