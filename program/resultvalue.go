package program

import "encoding/json"

// ResultValue returns v, a value of a run's outputs, ready for encoding/json
// in Python's JSON form: DSPy's callers get json.dumps's output, which
// writes the float 1.0 as 1.0 where encoding/json writes 1, and a client
// reading a float field must not find an integer. Floats become
// json.Number in Python's repr; a *Map already marshals its own floats so.
func ResultValue(v any) any {
	switch x := v.(type) {
	case float64:
		return json.Number(pyFloatRepr(x)) // finite: a non-finite float fails the parse
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = ResultValue(e)
		}
		return out
	}
	return v
}
