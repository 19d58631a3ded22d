package config

import "fmt"

// Error is one problem with one variable. [Load], [Parse] and
// [Config.Validate] join all they find (errors.Join); use errors.As to pick
// one out, or print the joined error, one problem per line.
type Error struct {
	// Var is the environment variable, e.g. JOB_TIMEOUT.
	Var string
	// Problem says what is expected and what was found; it never holds a
	// secret.
	Problem string
}

// Error returns "VAR: problem".
func (e *Error) Error() string { return e.Var + ": " + e.Problem }

func varErr(name, format string, args ...any) error {
	return &Error{Var: name, Problem: fmt.Sprintf(format, args...)}
}
