package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
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
	c, err := r.programs.Program(ctx, programName(opts.Program), opts.ProgramVersion)
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

// stageRun is one stage's outcome: run now, or read from its checkpoint.
type stageRun struct {
	key string
	// outputs are the stage's outputs as later stages take them (program
	// values); result as the job's result holds them.
	outputs map[string]any
	result  jobs.Outputs
	usage   map[string]program.Usage
	cp      jobs.Checkpoint
}

// runStages runs c's stages, resuming after opts.Done.
func runStages(ctx context.Context, c *programfile.Compiled, lm *countingLM, inputs jobs.Inputs, opts RunOptions) (*RunResult, error) {
	stages := c.Built.Stages
	multi := len(stages) > 1
	done := make(map[string]*stageRun, len(stages))
	runs := make([]*stageRun, 0, len(stages))
	for i, st := range stages {
		var sr *stageRun
		var err error
		if multi && i < len(opts.Done) && opts.Done[i].Stage == st.Key && len(opts.Done[i].Values) > 0 {
			sr, err = resumed(opts.Done[i])
		} else {
			sr, err = runStage(ctx, c, lm, st, stageInputs(st, inputs, done), multi, opts)
			if err == nil && multi && opts.OnStage != nil {
				err = opts.OnStage(ctx, i, &sr.cp)
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
	return result(c, runs, multi)
}

// runStage runs one stage's predictor.
func runStage(ctx context.Context, c *programfile.Compiled, lm *countingLM, st programfile.Stage, in map[string]any, multi bool, opts RunOptions) (*stageRun, error) {
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
	res, err := c.Program.RunStage(ctx, lm, st.Key, in, po)
	if err != nil {
		return nil, err
	}
	sr := &stageRun{key: st.Key, outputs: make(map[string]any, res.Outputs.Len()), usage: res.Usage}
	for _, k := range res.Outputs.Keys() { // the signature's order
		v, _ := res.Outputs.Get(k)
		sr.outputs[k] = v
		sr.result = append(sr.result, jobs.Output{Name: k, Value: program.ResultValue(v)})
	}
	usage, err := json.Marshal(res.Usage)
	if err != nil {
		return nil, fmt.Errorf("encode usage: %w", err)
	}
	sr.cp = jobs.Checkpoint{
		StageUsage: jobs.StageUsage{Stage: st.Key, Usage: usage, LMCalls: int(lm.calls.Load() - calls), CacheHit: res.CacheHit},
		Outputs:    sr.result,
	}
	if multi {
		if sr.cp.Values, err = program.EncodeJSONIndent(res.Outputs); err != nil {
			return nil, fmt.Errorf("encode outputs: %w", err)
		}
	}
	return sr, nil
}

// resumed is a stage an earlier attempt finished, from its checkpoint.
func resumed(cp jobs.Checkpoint) (*stageRun, error) {
	sr := &stageRun{key: cp.Stage, outputs: make(map[string]any, len(cp.Outputs)), result: cp.Outputs, cp: cp}
	// The outputs as the program returned them (ints as int64, floats as
	// float64, objects ordered), so a later stage renders them as it would
	// have unresumed.
	v, err := program.DecodeJSON(cp.Values)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint of stage %s: %w", cp.Stage, err)
	}
	m, ok := v.(*program.Map)
	if !ok {
		return nil, fmt.Errorf("read checkpoint of stage %s: its values are not an object", cp.Stage)
	}
	for _, k := range m.Keys() {
		sr.outputs[k], _ = m.Get(k)
	}
	if len(cp.Usage) > 0 && string(cp.Usage) != "null" {
		dec := json.NewDecoder(bytes.NewReader(cp.Usage))
		dec.UseNumber() // token counts stay integers
		if err := dec.Decode(&sr.usage); err != nil {
			return nil, fmt.Errorf("read checkpoint usage: %w", err)
		}
	}
	return sr, nil
}

// stageInputs are st's inputs: each from the program's inputs or an
// earlier stage's outputs, as its bindings say.
func stageInputs(st programfile.Stage, inputs jobs.Inputs, done map[string]*stageRun) map[string]any {
	in := make(map[string]any, len(st.Inputs))
	for _, b := range st.Inputs {
		if b.Stage == "" {
			if v, ok := inputs[b.From]; ok {
				in[b.Field] = v
			}
			continue
		}
		if sr, ok := done[b.Stage]; ok {
			if v, ok := sr.outputs[b.From]; ok {
				in[b.Field] = v
			}
		}
	}
	return in
}

// result is the run's result: the program's outputs in order, the usage
// of every stage in total, and for a multi-stage program each stage's.
func result(c *programfile.Compiled, runs []*stageRun, multi bool) (*RunResult, error) {
	byKey := make(map[string]*stageRun, len(runs))
	total := map[string]program.Usage{}
	cached := true
	res := &RunResult{StateSHA256: c.Program.Provenance()}
	for _, sr := range runs {
		byKey[sr.key] = sr
		total = program.MergeUsage(total, sr.usage)
		cached = cached && sr.cp.CacheHit
		if multi {
			res.Stages = append(res.Stages, sr.cp.StageUsage)
		}
	}
	for _, o := range c.Built.Outputs {
		v, _ := byKey[o.Stage].result.Get(o.Field.Name)
		res.Outputs = append(res.Outputs, jobs.Output{Name: o.Name, Value: v})
	}
	res.CacheHit = cached
	res.Tokens = (&program.Result{Usage: total}).TotalTokens()
	if !multi {
		res.Usage = runs[0].cp.Usage // the stage's own, as encoded
		return res, nil
	}
	usage, err := json.Marshal(total)
	if err != nil {
		return nil, fmt.Errorf("encode usage: %w", err)
	}
	res.Usage = usage
	return res, nil
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
