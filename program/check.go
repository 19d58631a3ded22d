package program

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Checking inputs before a job is queued (issue 15, item 3): a value of the
// wrong type is refused with the field, the type expected and what came,
// where DSPy would render whatever it is given. The values are JSON as the
// API decodes it: string, bool, nil, json.Number (or float64 and the Go
// integers, from callers in Go), []any and map[string]any. A number is an
// int when written without a fraction or an exponent, so 1.0 is not an int
// (DSPy would render it as "1.0").

// InputError is an input whose value does not fit its type.
type InputError struct {
	// Field is the input at fault as a request names it: "inputs.claims",
	// "inputs.claims[2]", "inputs.scores.a".
	Field string
	// Expected is the type, as DSPy names it ("list[str]").
	Expected string
	// Got describes what came: "a string", "a number (3.5)", "null".
	Got string
}

// Error returns "inputs.claims: expected list[str], got a string".
func (e *InputError) Error() string {
	return e.Field + ": expected " + e.Expected + ", got " + e.Got
}

// CheckInputs checks in against the signature's input fields: see
// CheckFields.
func (s *Signature) CheckInputs(in map[string]any) error { return CheckFields(s.inputs, in) }

// CheckFields checks in against fields, a signature's or a program's
// inputs: each field is present (an Optional one may be null, not absent)
// and its value fits the field's type, and in has no other key. The first
// problem, in field order and then unknown keys sorted, is an *InputError.
func CheckFields(fields []Field, in map[string]any) error {
	for _, f := range fields {
		v, ok := in[f.Name]
		if !ok {
			return &InputError{Field: "inputs." + f.Name, Expected: f.Type.String(), Got: "nothing (the input is required)"}
		}
		if err := f.Type.Check(v); err != nil {
			err.Field = "inputs." + f.Name + err.Field
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(in)) {
		if !slices.ContainsFunc(fields, func(f Field) bool { return f.Name == k }) {
			names := make([]string, len(fields))
			for i, f := range fields {
				names[i] = f.Name
			}
			return &InputError{Field: "inputs." + k, Expected: "no such input (the inputs are " + strings.Join(names, ", ") + ")", Got: describe(in[k])}
		}
	}
	return nil
}

// Check reports whether v, a decoded JSON value, fits t. A mismatch is an
// *InputError whose Field is the path below v ("", "[2]", ".key"), for the
// caller to prefix.
func (t Type) Check(v any) *InputError {
	if t.fits(v) {
		return nil
	}
	if t.Model != nil {
		return modelInputError(t, v)
	}
	// Say which element is wrong when the container itself is right.
	switch t.name() {
	case "list", "set", "frozenset":
		if items, ok := v.([]any); ok && len(t.Args) > 0 {
			for i, item := range items {
				if err := t.Args[0].Check(item); err != nil {
					err.Field = "[" + strconv.Itoa(i) + "]" + err.Field
					return err
				}
			}
		}
	case "tuple":
		if items, ok := v.([]any); ok {
			for i, item := range items {
				if at, ok := t.tupleItem(i, len(items)); ok {
					if err := at.Check(item); err != nil {
						err.Field = "[" + strconv.Itoa(i) + "]" + err.Field
						return err
					}
				}
			}
			return &InputError{Expected: t.String(), Got: "an array of " + plural(int64(len(items)), "item")}
		}
	case "dict":
		if m, ok := v.(map[string]any); ok && len(t.Args) == 2 {
			for _, k := range slices.Sorted(maps.Keys(m)) {
				if err := t.Args[1].Check(m[k]); err != nil {
					err.Field = "." + k + err.Field
					return err
				}
			}
		}
	}
	got := describe(v)
	if s, ok := v.(string); ok && t.Name == "Literal" && len(s) <= 40 {
		got += " (" + strconv.Quote(s) + ")" // which value missed; short, so not a user's text
	}
	return &InputError{Expected: t.String(), Got: got}
}

// fits reports whether v is a value of t.
func (t Type) fits(v any) bool {
	switch t.name() {
	case "str":
		_, ok := v.(string)
		return ok
	case "int":
		return isInt(v)
	case "float":
		return isNumber(v)
	case "bool":
		_, ok := v.(bool)
		return ok
	case "NoneType":
		return v == nil
	case "Any":
		return true
	case "list", "set", "frozenset":
		items, ok := v.([]any)
		return ok && (len(t.Args) == 0 || all(items, t.Args[0].fits))
	case "tuple":
		items, ok := v.([]any)
		if !ok {
			return false
		}
		for i, item := range items {
			at, ok := t.tupleItem(i, len(items))
			if !ok || !at.fits(item) {
				return false
			}
		}
		return len(t.Args) == 0 || isVariadic(t) || len(items) == len(t.Args)
	case "dict":
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for _, e := range m {
			if len(t.Args) == 2 && !t.Args[1].fits(e) {
				return false
			}
		}
		return true
	case "Literal":
		return slices.ContainsFunc(t.Values, func(l any) bool { return literalEqual(l, v) })
	case "Union", "UnionType":
		return slices.ContainsFunc(t.Args, func(a Type) bool { return a.fits(v) })
	}
	if t.Model != nil {
		return t.CheckValue(v) == nil
	}
	return false
}

// tupleItem is the type of item i of an n-item tuple value of t; false
// when t has no item i.
func (t Type) tupleItem(i, n int) (Type, bool) {
	switch {
	case len(t.Args) == 0:
		return Type{Name: "Any"}, true
	case isVariadic(t):
		return t.Args[0], true
	case i < len(t.Args):
		return t.Args[i], true
	}
	return Type{}, false
}

// isVariadic reports whether t is tuple[X, ...].
func isVariadic(t Type) bool { return len(t.Args) == 2 && t.Args[1].Name == "..." }

func all(items []any, fits func(any) bool) bool {
	for _, item := range items {
		if !fits(item) {
			return false
		}
	}
	return true
}

// isInt reports whether v is a JSON number written as an integer.
func isInt(v any) bool {
	switch n := v.(type) {
	case json.Number:
		return !strings.ContainsAny(string(n), ".eE")
	case int, int64, int32, BigInt:
		return true
	case float64:
		return n == math.Trunc(n) && !math.IsInf(n, 0)
	}
	return false
}

func isNumber(v any) bool {
	switch v.(type) {
	case json.Number, int, int64, int32, BigInt, float64:
		return true
	}
	return false
}

// literalEqual reports whether v, decoded JSON, is the Literal value l
// (string, int64, float64, bool or nil). Python's 1 == True is not
// followed: JSON keeps numbers and booleans apart.
func literalEqual(l, v any) bool {
	switch l := l.(type) {
	case nil:
		return v == nil
	case string, bool:
		return l == v
	case int64:
		return isInt(v) && numberText(v) == strconv.FormatInt(l, 10)
	case float64:
		f, err := strconv.ParseFloat(numberText(v), 64)
		return isNumber(v) && err == nil && f == l
	}
	return false
}

// numberText is a number's JSON text.
func numberText(v any) string {
	switch n := v.(type) {
	case json.Number:
		return string(n)
	case BigInt:
		return string(n)
	case float64:
		return strconv.FormatFloat(n, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// describe names a value's JSON type for an InputError, with a number's
// text; never a string's, which may be anything a user sent.
func describe(v any) string {
	if isNumber(v) {
		return "a number (" + numberText(v) + ")"
	}
	return jsonKind(v)
}

// modelInputError is the first problem pydantic's lax validation finds in
// v, a value of the model type t: a model input is validated as DSPy's
// caller's pydantic model would be, then printed as its model_dump.
func modelInputError(t Type, v any) *InputError {
	var ce *CheckError
	if err := t.CheckValue(v); !errors.As(err, &ce) {
		return &InputError{Expected: t.String(), Got: describe(v)}
	}
	e := &InputError{Expected: ce.Expected, Got: "a JSON " + ce.Got}
	switch {
	case ce.Got == "":
		e.Got = "nothing (the field is required)"
	case ce.Got == "null":
		e.Got = "null"
	}
	if ce.Path != "" && !strings.HasPrefix(ce.Path, "[") {
		e.Field = "." + ce.Path
	} else {
		e.Field = ce.Path
	}
	return e
}
