package program

import (
	"fmt"
	"strings"
)

// CheckError is the first problem CheckValue finds in a value.
type CheckError struct {
	// Path leads to the problem: "citations[0].url"; "" for the value
	// itself.
	Path string
	// Expected is the type wanted there, as DSPy names it: "str",
	// "list[Citation]", "Union[Citation, int]".
	Expected string
	// Got is the JSON kind that came ("number", "string", "boolean",
	// "null", "array", "object"), or "" for a missing required field.
	Got string
}

// Error reads "citations[0].url: expected str, got number", or
// "summary: missing (expected str)".
func (e *CheckError) Error() string {
	msg := "expected " + e.Expected + ", got " + e.Got
	if e.Got == "" {
		msg = "missing (expected " + e.Expected + ")"
	}
	if e.Path == "" {
		return msg
	}
	return e.Path + ": " + msg
}

// CheckValue checks a value decoded by encoding/json (with UseNumber:
// json.Number, string, bool, nil, []any, map[string]any) against t as
// pydantic's lax mode validates an input: what pydantic would coerce
// ("12" for an int) passes, extra keys of a model are ignored, missing
// fields with defaults are fine. The error, a *CheckError, names the first
// problem in pydantic's order.
func (t Type) CheckValue(v any) error {
	_, err := validate(toOrdered(v), t)
	if err == nil {
		return nil
	}
	ve, ok := err.(*validationError)
	if !ok || len(ve.lines) == 0 {
		return &CheckError{Expected: t.String(), Got: jsonType(toOrdered(v))}
	}
	l := ve.lines[0]
	var path strings.Builder
	want := l.want
	for i, p := range l.loc {
		switch {
		case p.union != "":
			if i == len(l.loc)-1 {
				// The value matched no member: name the union.
				want = p.union
			}
		case p.index:
			fmt.Fprintf(&path, "[%s]", p.key)
		default:
			if path.Len() > 0 {
				path.WriteByte('.')
			}
			path.WriteString(p.key)
		}
	}
	ce := &CheckError{Path: path.String(), Expected: want, Got: jsonType(l.input)}
	switch {
	case l.kind == "missing":
		ce.Got = ""
	case l.got != "":
		ce.Got = l.got
	}
	return ce
}
