package programs

import (
	"context"
	"fmt"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
)

// Builtin serves the built-in QA program, ("qa", ""), without a state:
// enough for a process that reads its signature (the API checks inputs
// against it) and does not run it. Workers wrap their own, with
// PROGRAM_STATE_PATH's state.
type Builtin struct{ c *programfile.Compiled }

// NewBuiltin compiles the built-in QA program.
func NewBuiltin() (*Builtin, error) {
	built, err := programfile.QA()
	if err != nil {
		return nil, err
	}
	p, err := program.NewProgram(built.Predictors()...)
	if err != nil {
		return nil, fmt.Errorf("compile QA program: %w", err)
	}
	return &Builtin{c: &programfile.Compiled{Built: built, Program: p}}, nil
}

// Program returns the built-in program for ("qa", ""); anything else is
// an error wrapping jobs.ErrProgramVersionGone.
func (b *Builtin) Program(_ context.Context, name, version string) (*programfile.Compiled, error) {
	if name != jobs.ProgramQA || version != "" {
		return nil, fmt.Errorf("load program %s@%s: %w", name, short(version), jobs.ErrProgramVersionGone)
	}
	return b.c, nil
}
