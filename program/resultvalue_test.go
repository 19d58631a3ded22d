package program

import (
	"encoding/json"
	"testing"
)

// A run's values go out in Python's JSON forms: the float 1.0 as 1.0, as
// DSPy's json.dumps writes it, where encoding/json writes 1.
func TestResultValueKeepsPythonFloats(t *testing.T) {
	m := NewMap()
	m.Set("x", 3.0)
	for _, c := range []struct {
		v    any
		want string
	}{
		{1.0, `1.0`}, {0.25, `0.25`}, {1e20, `1e+20`}, {int64(3), `3`},
		{[]any{2.0, "a", []any{1.5, 4.0}}, `[2.0,"a",[1.5,4.0]]`},
		{m, `{"x":3.0}`}, {"é", `"é"`}, {nil, `null`}, {true, `true`},
	} {
		b, err := json.Marshal(ResultValue(c.v))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("ResultValue(%#v) marshals as %s, want %s", c.v, b, c.want)
		}
	}
}
