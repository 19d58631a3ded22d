package programfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/program/pysource"
)

// Compiled is a bundle made ready to run: the file resolved and its
// stages' predictors with the saved state applied.
type Compiled struct {
	// Built is the file resolved: stages, bindings, inputs and outputs,
	// each stage's predictor as the code declares it (no state).
	Built *Program
	// Program holds the stages' predictors under their keys, in stage
	// order, with the bundle's state applied when it has one.
	Program *program.Program
	// Warnings are the state's version differences (DSPy's text), for the
	// caller to show; they do not stop the program.
	Warnings []string
}

// Compile builds the bundle's program: the signature classes its stages
// name are read from the bundle's source with pysource (never run), the
// dataflow is resolved (File.Build), and the state, if any, is applied
// with program.Program.WithState. A class the source lacks is an *Error
// naming the stage, the class and the source file; a class pysource or
// program cannot serve is refused with pysource's error (file:line:col),
// wrapped with the stage and the class. Classes no stage names are not
// built, so what they declare does not matter.
func Compile(b *Bundle) (*Compiled, error) {
	classes, err := readClasses(b)
	if err != nil {
		return nil, fmt.Errorf("compile program %s: %w", b.File.Name, err)
	}
	built, err := b.File.Build(func(class string) (*program.Signature, error) {
		if sig, ok := classes[class]; ok {
			return sig, nil
		}
		return nil, fmt.Errorf("class %s was not read", class) // readClasses read every class a stage names
	})
	if err != nil {
		return nil, fmt.Errorf("compile program %s: %w", b.File.Name, err)
	}
	prog, err := program.NewProgram(built.Predictors()...)
	if err != nil {
		return nil, fmt.Errorf("compile program %s: %w", b.File.Name, err)
	}
	c := &Compiled{Built: built, Program: prog}
	if b.State != nil {
		name := b.File.State
		if name == "" {
			name = "state"
		}
		if c.Program, c.Warnings, err = prog.WithState(b.State, name); err != nil {
			return nil, fmt.Errorf("compile program %s: %w", b.File.Name, err)
		}
	}
	return c, nil
}

// readClasses reads the bundle's source, when it has one, and returns the
// signature of each class a stage names.
func readClasses(b *Bundle) (map[string]*program.Signature, error) {
	var src *pysource.File
	if b.Source != nil {
		var err error
		if src, err = pysource.Read(b.File.Source, b.Source); err != nil {
			return nil, fmt.Errorf("read source: %w", err)
		}
	}
	classes := map[string]*program.Signature{}
	for i, st := range b.File.Stages {
		if isStringSignature(st.Signature) {
			continue
		}
		if _, done := classes[st.Signature]; done {
			continue
		}
		path := "stages[" + strconv.Itoa(i) + "].signature"
		if src == nil {
			return nil, st.sigAt.errorf(path, "stage %q: class %s: the bundle lacks the source %s", st.Key, st.Signature, b.File.Source)
		}
		sc, err := src.Signature(st.Signature)
		if errors.Is(err, pysource.ErrNotDeclared) {
			return nil, st.sigAt.errorf(path, "stage %q: class %s is not a dspy.Signature in %s (its signatures: %s)", st.Key, st.Signature, b.File.Source, signatureNames(src))
		}
		var sig *program.Signature
		if err == nil {
			sig, err = sc.Signature()
		}
		if err != nil {
			e := st.sigAt.errorf(path, "stage %q: class %s: %s", st.Key, st.Signature, err.Error())
			e.Err = err
			return nil, e
		}
		classes[st.Signature] = sig
	}
	return classes, nil
}

func signatureNames(f *pysource.File) string {
	if len(f.Signatures) == 0 {
		return "none"
	}
	n := make([]string, len(f.Signatures))
	for i, s := range f.Signatures {
		n[i] = s.Name
	}
	return strings.Join(n, ", ")
}

// Stage returns the stage with key and its predictor with the state
// applied. An empty key names the only stage of a single-stage program.
// Errors list the stage keys to choose from.
func (c *Compiled) Stage(key string) (Stage, *program.Predict, error) {
	stages := c.Built.Stages
	if key == "" {
		if len(stages) != 1 {
			return Stage{}, nil, fmt.Errorf("program %s has %d stages, name one: %s", c.Built.Name, len(stages), c.stageKeys())
		}
		key = stages[0].Key
	}
	for _, st := range stages {
		if st.Key == key {
			pred, ok := c.Program.Predict(key)
			if !ok {
				return Stage{}, nil, errors.New("compiled program lacks predictor " + strconv.Quote(key))
			}
			return st, pred, nil
		}
	}
	return Stage{}, nil, fmt.Errorf("program %s has no stage %q; its stages: %s", c.Built.Name, key, c.stageKeys())
}

func (c *Compiled) stageKeys() string {
	keys := make([]string, len(c.Built.Stages))
	for i, st := range c.Built.Stages {
		keys[i] = st.Key
	}
	return strings.Join(keys, ", ")
}
