package programrun

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
)

// Stage is one stage's outcome: run now, or read from its checkpoint.
type Stage struct {
	Key string
	// Outputs are the stage's outputs as later stages take them (program
	// values); Result as the run's result holds them.
	Outputs map[string]any
	Result  jobs.Outputs
	Usage   map[string]program.Usage
	// Checkpoint is the stage as a multi-stage run records it.
	Checkpoint jobs.Checkpoint
}

// Finished is stage key's outcome from its predictor's result res, which
// took lmCalls LM calls. multi (a stage of a multi-stage program) keeps the
// outputs' program values in the checkpoint, for a resumed run.
func Finished(key string, res *program.Result, lmCalls int, multi bool) (*Stage, error) {
	st := &Stage{Key: key, Outputs: make(map[string]any, res.Outputs.Len()), Usage: res.Usage}
	for _, k := range res.Outputs.Keys() { // the signature's order
		v, _ := res.Outputs.Get(k)
		st.Outputs[k] = v
		st.Result = append(st.Result, jobs.Output{Name: k, Value: program.ResultValue(v)})
	}
	usage, err := json.Marshal(res.Usage)
	if err != nil {
		return nil, fmt.Errorf("encode usage: %w", err)
	}
	st.Checkpoint = jobs.Checkpoint{
		StageUsage: jobs.StageUsage{Stage: key, Usage: usage, LMCalls: lmCalls, CacheHit: res.CacheHit},
		Outputs:    st.Result,
	}
	if multi {
		if st.Checkpoint.Values, err = program.EncodeJSONIndent(res.Outputs); err != nil {
			return nil, fmt.Errorf("encode outputs: %w", err)
		}
	}
	return st, nil
}

// Resumed is a stage an earlier run finished, from its checkpoint.
func Resumed(cp jobs.Checkpoint) (*Stage, error) {
	st := &Stage{Key: cp.Stage, Outputs: make(map[string]any, len(cp.Outputs)), Result: cp.Outputs, Checkpoint: cp}
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
		st.Outputs[k], _ = m.Get(k)
	}
	if len(cp.Usage) > 0 && string(cp.Usage) != "null" {
		dec := json.NewDecoder(bytes.NewReader(cp.Usage))
		dec.UseNumber() // token counts stay integers
		if err := dec.Decode(&st.Usage); err != nil {
			return nil, fmt.Errorf("read checkpoint usage: %w", err)
		}
	}
	return st, nil
}

// Inputs are st's inputs: each from the program's inputs or an earlier
// stage's outputs (done, by stage key), as its bindings say.
func Inputs(st programfile.Stage, inputs jobs.Inputs, done map[string]*Stage) map[string]any {
	in := make(map[string]any, len(st.Inputs))
	for _, b := range st.Inputs {
		if b.Stage == "" {
			if v, ok := inputs[b.From]; ok {
				in[b.Field] = v
			}
			continue
		}
		if sr, ok := done[b.Stage]; ok {
			if v, ok := sr.Outputs[b.From]; ok {
				in[b.Field] = v
			}
		}
	}
	return in
}

// Result is a finished run over every stage of its program.
type Result struct {
	// Outputs are the program's outputs in order.
	Outputs jobs.Outputs
	// Usage is the stages' usage in total (a one-stage program's as its
	// stage encoded it).
	Usage json.RawMessage
	// Tokens is Usage's total_tokens over its models.
	Tokens   int64
	CacheHit bool
	// StateSHA256 is the program state's.
	StateSHA256 string
	// Stages are a multi-stage program's stages, each with its usage; nil
	// for a one-stage program.
	Stages []jobs.StageUsage
}

// Assemble is the run's result from its stages (every stage of c, in
// order): the program's outputs in order, the usage of every stage in
// total, and for a multi-stage program each stage's.
func Assemble(c *programfile.Compiled, runs []*Stage, multi bool) (*Result, error) {
	byKey := make(map[string]*Stage, len(runs))
	total := map[string]program.Usage{}
	cached := true
	res := &Result{StateSHA256: c.Program.Provenance()}
	for _, st := range runs {
		byKey[st.Key] = st
		total = program.MergeUsage(total, st.Usage)
		cached = cached && st.Checkpoint.CacheHit
		if multi {
			res.Stages = append(res.Stages, st.Checkpoint.StageUsage)
		}
	}
	for _, o := range c.Built.Outputs {
		st, ok := byKey[o.Stage]
		if !ok {
			return nil, fmt.Errorf("assemble result: stage %s did not run", o.Stage)
		}
		v, _ := st.Result.Get(o.Field.Name)
		res.Outputs = append(res.Outputs, jobs.Output{Name: o.Name, Value: v})
	}
	res.CacheHit = cached
	res.Tokens = (&program.Result{Usage: total}).TotalTokens()
	if !multi {
		res.Usage = runs[0].Checkpoint.Usage // the stage's own, as encoded
		return res, nil
	}
	usage, err := json.Marshal(total)
	if err != nil {
		return nil, fmt.Errorf("encode usage: %w", err)
	}
	res.Usage = usage
	return res, nil
}

// ProgramName is the program a spec names without its alias ("claims" of
// "claims@stable"); a spec from before programs were named runs qa.
func ProgramName(spec string) string {
	name, _, _ := strings.Cut(spec, "@")
	if name == "" {
		return jobs.ProgramQA
	}
	return name
}
