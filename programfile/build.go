package programfile

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/qaqueue/qaqueue/program"
)

// Resolver returns the signature of a class in the program's source (a
// dspy.Signature subclass). Build calls it for each stage whose signature
// is a class name; it reads the source, this package does not.
type Resolver func(className string) (*program.Signature, error)

// Program is a program file resolved: each stage's signature and where
// each of its inputs comes from, the program's inputs and its outputs.
type Program struct {
	// File is the file it was built from; File.Canonical is its
	// canonical form.
	File *File
	// Name and Description are the file's.
	Name, Description string
	// Stages run in order.
	Stages []Stage
	// Inputs are the program's inputs: the stage inputs that no earlier
	// stage produces and that no binding routes elsewhere, in first-use
	// order, typed as the stage that first uses them declares.
	Inputs []program.Field
	// Outputs are the program's outputs in order.
	Outputs []Output
}

// Stage is a resolved stage.
type Stage struct {
	// Key is the predictor's name in named_predictors() and in the state.
	Key string
	// Module is the DSPy module the stage runs.
	Module Module
	// Signature is the signature as resolved, before the module adds
	// fields.
	Signature *program.Signature
	// Predict is the predictor the module holds (for ChainOfThought, with
	// reasoning before the first output), without state.
	Predict *program.Predict
	// Inputs says where each input field comes from, in signature order.
	Inputs []Binding
}

// Binding is where a stage input's value comes from: a program input
// (Stage empty) or an earlier stage's output.
type Binding struct {
	// Field is the stage's input field.
	Field string
	// Stage is the key of the earlier stage, or "" for a program input.
	Stage string
	// From is the program input or the earlier stage's output field.
	From string
}

// Output is one program output.
type Output struct {
	// Name is the output's key in the program's result: the field name.
	Name string
	// Stage is the key of the stage that produces it.
	Stage string
	// Field is that stage's output field (its type and description).
	Field program.Field
}

// Predictors returns the stages' predictors under their keys, in stage
// order: what program.NewProgram takes and what a saved state is matched
// against.
func (p *Program) Predictors() []program.NamedPredict {
	preds := make([]program.NamedPredict, len(p.Stages))
	for i, s := range p.Stages {
		preds[i] = program.NamedPredict{Key: s.Key, Predict: s.Predict}
	}
	return preds
}

// Build resolves the file: each stage's signature (a string signature
// parsed here, a class name through resolve), then the dataflow. A stage
// input takes, unless bound explicitly, the latest earlier stage's
// same-named output, else the same-named program input. Without an outputs
// list the program's outputs are every stage's outputs (ChainOfThought's
// reasoning included, as in DSPy's Prediction), and a name two stages
// produce must then be listed as STAGE_KEY.field.
func (f *File) Build(resolve Resolver) (*Program, error) {
	p := &Program{File: f, Name: f.Name, Description: f.Description}
	index := make(map[string]int, len(f.Stages))
	for i, spec := range f.Stages {
		st, err := buildStage(spec, i, resolve)
		if err != nil {
			return nil, err
		}
		p.Stages = append(p.Stages, st)
		index[spec.Key] = i
	}
	if err := p.bindInputs(index); err != nil {
		return nil, err
	}
	var err error
	if len(f.Outputs) > 0 {
		p.Outputs, err = p.listedOutputs(index)
	} else {
		p.Outputs, err = p.defaultOutputs()
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func buildStage(spec FileStage, i int, resolve Resolver) (Stage, error) {
	path := "stages[" + strconv.Itoa(i) + "].signature"
	var sig *program.Signature
	var err error
	switch {
	case isStringSignature(spec.Signature):
		sig, err = program.ParseSignature(spec.Signature, "")
	case resolve == nil:
		return Stage{}, spec.sigAt.errorf(path, "class %s: no source reader to resolve it", spec.Signature)
	default:
		sig, err = resolve(spec.Signature)
		if err == nil && sig == nil {
			err = fmt.Errorf("class %s not found", spec.Signature)
		}
	}
	if err != nil {
		e := spec.sigAt.errorf(path, "%s", err.Error())
		e.Err = err
		return Stage{}, e
	}
	pred, err := spec.Module.newPredict(sig)
	if err != nil {
		e := spec.sigAt.errorf(path, "%s over this signature: %s", spec.Module, err.Error())
		e.Err = err
		return Stage{}, e
	}
	return Stage{Key: spec.Key, Module: spec.Module, Signature: sig, Predict: pred}, nil
}

// bindInputs resolves every stage input and collects the program inputs.
func (p *Program) bindInputs(index map[string]int) error {
	latest := map[string]int{}  // output field → latest stage so far producing it
	inputAt := map[string]int{} // program input → index in p.Inputs
	for i := range p.Stages {
		st := &p.Stages[i]
		spec := p.File.Stages[i]
		path := "stages[" + strconv.Itoa(i) + "].inputs"
		declared := map[string]bool{}
		for _, in := range st.Signature.Inputs() {
			declared[in.Name] = true
			b := Binding{Field: in.Name}
			if ref, ok := spec.Inputs[in.Name]; ok {
				var err error
				if b.Stage, b.From, err = p.explicitSource(ref, i, index); err != nil {
					return spec.inputsAt[in.Name].errorf(joinPath(path, in.Name), "%s", err.Error())
				}
			} else if j, ok := latest[in.Name]; ok {
				b.Stage, b.From = p.Stages[j].Key, in.Name
			} else {
				b.From = in.Name
			}
			if b.Stage == "" {
				if err := p.addInput(in, b.From, inputAt); err != nil {
					return spec.sigAt.errorf("stages["+strconv.Itoa(i)+"].signature", "%s", err.Error())
				}
			}
			st.Inputs = append(st.Inputs, b)
		}
		for _, field := range sortedKeys(spec.Inputs) {
			if !declared[field] {
				return spec.inputKeysAt[field].errorf(joinPath(path, field), "stage %q has no input %q (its inputs: %s)", st.Key, field, names(st.Signature.Inputs()))
			}
		}
		for _, out := range st.Predict.Signature().Outputs() {
			latest[out.Name] = i
		}
	}
	return nil
}

// explicitSource resolves "input.X" or "STAGE_KEY.X" for stage i.
func (p *Program) explicitSource(ref string, i int, index map[string]int) (stage, field string, err error) {
	key, field, _ := splitRef(ref) // checked by Parse
	if key == "input" {
		return "", field, nil
	}
	j, ok := index[key]
	switch {
	case !ok:
		return "", "", fmt.Errorf("%q: no stage has the key %q", ref, key)
	case j == i:
		return "", "", fmt.Errorf("%q: a stage cannot take its own output", ref)
	case j > i:
		return "", "", fmt.Errorf("%q: stage %q runs later (stages[%d])", ref, key, j)
	}
	if _, ok := p.Stages[j].Predict.Signature().Output(field); !ok {
		return "", "", fmt.Errorf("%q: stage %q has no output %q (its outputs: %s)", ref, key, field, names(p.Stages[j].Predict.Signature().Outputs()))
	}
	return key, field, nil
}

// addInput records program input name, typed as the stage field in that
// takes it first; a later stage taking it with another type is an error.
func (p *Program) addInput(in program.Field, name string, inputAt map[string]int) error {
	if k, ok := inputAt[name]; ok {
		if have := p.Inputs[k].Type.String(); have != in.Type.String() {
			return fmt.Errorf("program input %q is %s here but %s in an earlier stage", name, in.Type.String(), have)
		}
		return nil
	}
	f := in
	f.Name = name
	inputAt[name] = len(p.Inputs)
	p.Inputs = append(p.Inputs, f)
	return nil
}

// listedOutputs resolves the file's outputs list.
func (p *Program) listedOutputs(index map[string]int) ([]Output, error) {
	outs := make([]Output, 0, len(p.File.Outputs))
	byName := map[string]string{}
	for i, ref := range p.File.Outputs {
		at, path := p.File.outputsAt[i], "outputs["+strconv.Itoa(i)+"]"
		out, err := p.output(ref, index)
		if err != nil {
			return nil, at.errorf(path, "%s", err.Error())
		}
		if first, ok := byName[out.Name]; ok {
			return nil, at.errorf(path, "%q is also the output %q: a result has one value per name", ref, first)
		}
		byName[out.Name] = ref
		outs = append(outs, out)
	}
	return outs, nil
}

// output resolves one listed output: "field" names the one stage
// producing it, "STAGE_KEY.field" a stage's output.
func (p *Program) output(ref string, index map[string]int) (Output, error) {
	if key, field, ok := splitRef(ref); ok {
		j, ok := index[key]
		if !ok {
			return Output{}, fmt.Errorf("%q: no stage has the key %q", ref, key)
		}
		f, ok := p.Stages[j].Predict.Signature().Output(field)
		if !ok {
			return Output{}, fmt.Errorf("%q: stage %q has no output %q (its outputs: %s)", ref, key, field, names(p.Stages[j].Predict.Signature().Outputs()))
		}
		return Output{Name: field, Stage: key, Field: f}, nil
	}
	var found []Output
	for _, st := range p.Stages {
		if f, ok := st.Predict.Signature().Output(ref); ok {
			found = append(found, Output{Name: ref, Stage: st.Key, Field: f})
		}
	}
	switch len(found) {
	case 0:
		return Output{}, fmt.Errorf("%q: no stage has this output", ref)
	case 1:
		return found[0], nil
	}
	return Output{}, fmt.Errorf("%q is an output of stages %s: list it as %s", ref, quotedStages(found), qualified(found))
}

// defaultOutputs is every stage's outputs, in stage then signature order.
func (p *Program) defaultOutputs() ([]Output, error) {
	var outs []Output
	byName := map[string]int{}
	for i, st := range p.Stages {
		for _, f := range st.Predict.Signature().Outputs() {
			if k, ok := byName[f.Name]; ok {
				both := []Output{outs[k], {Name: f.Name, Stage: st.Key}}
				return nil, p.File.Stages[i].at.errorf("outputs", "%q is an output of stages %s: list the program's outputs, naming it as %s", f.Name, quotedStages(both), qualified(both))
			}
			byName[f.Name] = len(outs)
			outs = append(outs, Output{Name: f.Name, Stage: st.Key, Field: f})
		}
	}
	return outs, nil
}

func quotedStages(outs []Output) string {
	q := make([]string, len(outs))
	for i, o := range outs {
		q[i] = strconv.Quote(o.Stage)
	}
	return strings.Join(q, " and ")
}

func qualified(outs []Output) string {
	q := make([]string, len(outs))
	for i, o := range outs {
		q[i] = o.Stage + "." + o.Name
	}
	return strings.Join(q, " or ")
}

func names(fields []program.Field) string {
	if len(fields) == 0 {
		return "none"
	}
	n := make([]string, len(fields))
	for i, f := range fields {
		n[i] = f.Name
	}
	return strings.Join(n, ", ")
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
