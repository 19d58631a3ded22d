package jobs

import "errors"

// CodeProgramVersionGone is the failure code of a job whose program version
// is no longer stored: it was pruned (PROGRAM_MAX_VERSIONS) while the job
// waited in its queue. Retrying cannot help, so the job fails at once.
const CodeProgramVersionGone = "program_version_gone"

// ErrProgramVersionGone is what a program source returns for a version it no
// longer holds; the worker fails the job with CodeProgramVersionGone.
var ErrProgramVersionGone = errors.New("program version gone")
