package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
)

// Programs is where a worker gets the program a job runs.
type Programs interface {
	// Program returns the compiled program of a job's spec. version "" with
	// name "qa" is the built-in QA program with PROGRAM_STATE_PATH's state
	// (jobs queued before issue 15 have no version). A version no longer
	// stored returns an error wrapping jobs.ErrProgramVersionGone.
	Program(ctx context.Context, name, version string) (*programfile.Compiled, error)
}

// ProgramKey names a program version in StaticPrograms.
type ProgramKey struct {
	Name, Version string
}

// StaticPrograms is a fixed set of compiled programs: the built-in qa
// program under {"qa", ""}, and programs a test compiles from a file.
type StaticPrograms map[ProgramKey]*programfile.Compiled

// ErrUnknownProgram is what StaticPrograms returns for a name it holds no
// version of; the job fails at once.
var ErrUnknownProgram = errors.New("unknown program")

// Program returns the program stored under name and version. A name it
// holds other versions of answers jobs.ErrProgramVersionGone.
func (s StaticPrograms) Program(_ context.Context, name, version string) (*programfile.Compiled, error) {
	if c, ok := s[ProgramKey{name, version}]; ok {
		return c, nil
	}
	for k := range s {
		if k.Name == name {
			return nil, fmt.Errorf("program %s version %q: %w", name, version, jobs.ErrProgramVersionGone)
		}
	}
	return nil, fmt.Errorf("program %s: %w", name, ErrUnknownProgram)
}

// BuiltinQA is the built-in qa program compiled with the predictor p (the
// QA program with PROGRAM_STATE_PATH's state, program.LoadQA's).
func BuiltinQA(p *program.Program) (*programfile.Compiled, error) {
	built, err := programfile.QA()
	if err != nil {
		return nil, err
	}
	for _, st := range built.Stages {
		if _, ok := p.Predict(st.Key); !ok {
			return nil, fmt.Errorf("built-in qa program: the program lacks predictor %q", st.Key)
		}
	}
	return &programfile.Compiled{Built: built, Program: p}, nil
}
