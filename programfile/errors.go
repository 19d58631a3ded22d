package programfile

import (
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Error is a problem in a program file: where it is (the YAML line and
// column, 1-based, and the key path such as "stages[1].module") and what
// it is. Line is 0 for a problem with the file as a whole (its size).
type Error struct {
	Line, Column int
	// Path is the key path, e.g. "stages[1].inputs.quote"; empty for the
	// file as a whole.
	Path string
	// Msg says what is wrong.
	Msg string
	// Err is the underlying error, if any (a Resolver's or
	// program.ParseSignature's).
	Err error
}

// Error returns "line:col: path: message".
func (e *Error) Error() string {
	s := ""
	if e.Line > 0 {
		s = strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Column) + ": "
	}
	if e.Path != "" {
		s += e.Path + ": "
	}
	return s + e.Msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// pos is a YAML position kept from parsing, so Build's errors can name it.
type pos struct{ line, col int }

func posOf(n *yaml.Node) pos { return pos{n.Line, n.Column} }

func (p pos) errorf(path, format string, args ...any) *Error {
	return &Error{Line: p.line, Column: p.col, Path: path, Msg: fmt.Sprintf(format, args...)}
}

func errAt(n *yaml.Node, path, format string, args ...any) *Error {
	return posOf(n).errorf(path, format, args...)
}
