package programs

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/program/pysource"
	"github.com/qaqueue/qaqueue/programfile"
)

// Info describes a version to any key: what it takes and gives, never its
// instructions, demos or source (an optimized prompt is an asset; Detail
// has those, for admin keys).
type Info struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	// CreatedAt is when the version was pushed; absent for the built-in
	// program.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// Stages run in order.
	Stages []StageInfo `json:"stages"`
	// InputSchema and OutputSchema are JSON Schemas of the program's
	// inputs and outputs objects (program.FieldsSchema).
	InputSchema  json.RawMessage `json:"input_schema"`
	OutputSchema json.RawMessage `json:"output_schema"`
}

// StageInfo is one stage.
type StageInfo struct {
	Key    string `json:"key"`
	Module string `json:"module"`
	// Inputs say where each input comes from: "input.X" or
	// "STAGE_KEY.X".
	Inputs []Binding `json:"inputs"`
	// Outputs are the stage's output fields, ChainOfThought's reasoning
	// included.
	Outputs []string `json:"outputs"`
}

// Binding is a stage input and where its value comes from.
type Binding struct {
	Field string `json:"field"`
	From  string `json:"from"`
}

// describe is a compiled version's Info.
func describe(c *programfile.Compiled, version string, created time.Time) Info {
	p := c.Built
	info := Info{Name: p.Name, Version: version, Description: p.Description, CreatedAt: created.UTC().Truncate(time.Millisecond)}
	for _, st := range p.Stages {
		si := StageInfo{Key: st.Key, Module: string(st.Module), Inputs: []Binding{}}
		for _, b := range st.Inputs {
			from := "input." + b.From
			if b.Stage != "" {
				from = b.Stage + "." + b.From
			}
			si.Inputs = append(si.Inputs, Binding{Field: b.Field, From: from})
		}
		si.Outputs = st.Predict.Signature().OutputNames()
		info.Stages = append(info.Stages, si)
	}
	outs := make([]program.Field, len(p.Outputs))
	for i, o := range p.Outputs {
		outs[i] = o.Field
		outs[i].Name = o.Name
	}
	info.InputSchema, _ = json.Marshal(program.FieldsSchema("Inputs", p.Inputs)) // a *program.Map always encodes
	info.OutputSchema, _ = json.Marshal(program.FieldsSchema("Outputs", outs))
	return info
}

// Detail is a version as an admin key sees it: Info, each stage's
// instructions and demos with the state applied, and the pushed parts.
type Detail struct {
	Info
	// StageDetails are in stage order.
	StageDetails []StageDetail `json:"stage_details"`
	// File, Source and State are as pushed ("" when the file names none).
	File   string `json:"file"`
	Source string `json:"source,omitempty"`
	State  string `json:"state,omitempty"`
}

// StageDetail is what a stage's predictor says to the LM.
type StageDetail struct {
	Key          string         `json:"key"`
	Instructions string         `json:"instructions"`
	Demos        []*program.Map `json:"demos"`
}

// stageDetails are c's stages' instructions and demos.
func stageDetails(c *programfile.Compiled) []StageDetail {
	var out []StageDetail
	for _, np := range c.Program.Predictors() {
		demos := np.Predict.Demos()
		if demos == nil {
			demos = []*program.Map{}
		}
		out = append(out, StageDetail{Key: np.Key, Instructions: np.Predict.Signature().Instructions(), Demos: demos})
	}
	return out
}

// compilePart says which part of a push a Compile error is about.
func compilePart(err error) string {
	var src *pysource.Error
	var state *program.StateError
	var mismatch *program.StateMismatchError
	switch {
	case errors.As(err, &src):
		return "source"
	case errors.As(err, &state), errors.As(err, &mismatch):
		return "state"
	}
	return "file"
}

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}
