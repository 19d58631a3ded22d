// Package programrun is what a run of a compiled program (package
// programfile) does between its stages, shared by the two paths that run
// them: the worker's live runs (one item or job, every stage in one
// attempt) and the offload runner's provider rounds (one stage for every
// item of a batch at a time).
//
// It owns each stage's inputs as the program's bindings take them from the
// program's inputs and earlier stages' outputs (Inputs), a finished stage
// as later stages read it and as its checkpoint keeps it (Finished,
// Resumed), and the run's result over its stages (Assemble). Calling the LM
// is not here: the caller runs each stage's predictor (program.RunStage)
// with the LM and options of its path.
package programrun
