package program_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/program"
)

// A float that is not finite is a parse error, where pydantic's lax mode
// would accept nan and inf: a JSON result cannot carry it. The error is
// pydantic's own finite_number text (what allow_inf_nan=False gives).
func TestNonFiniteFloatIsAParseError(t *testing.T) {
	t.Parallel()
	plain, err := program.ParseSignature("q -> x: float", "")
	if err != nil {
		t.Fatal(err)
	}
	model := sourceSignature(t, "m.py", "import dspy\nfrom pydantic import BaseModel\n\nclass Score(BaseModel):\n    value: float\n\n"+
		"class Rate(dspy.Signature):\n    q: str = dspy.InputField()\n    x: list[Score] = dspy.OutputField()\n", "Rate")
	for _, tc := range []struct {
		name       string
		sig        *program.Signature
		adapter    program.Adapter
		completion string
	}{
		{"chat nan", plain, program.ChatAdapter{}, "[[ ## x ## ]]\nnan\n\n[[ ## completed ## ]]"},
		{"chat inf", plain, program.ChatAdapter{}, "[[ ## x ## ]]\n-Infinity\n\n[[ ## completed ## ]]"},
		{"chat overflow", plain, program.ChatAdapter{}, "[[ ## x ## ]]\n1e999\n\n[[ ## completed ## ]]"},
		{"json NaN", plain, program.JSONAdapter{}, `{"x": NaN}`},
		{"json string inf", plain, program.JSONAdapter{}, `{"x": "inf"}`},
		{"json overflow", plain, program.JSONAdapter{}, `{"x": 1e400}`},
		{"model chat", model, program.ChatAdapter{}, "[[ ## x ## ]]\n[{\"value\": \"nan\"}]\n\n[[ ## completed ## ]]"},
		{"model json", model, program.JSONAdapter{}, `{"x": [{"value": 1}, {"value": Infinity}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.adapter.Parse(tc.sig, tc.completion)
			var pe *program.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = %v, %v; want a parse error", out, err)
			}
			if !strings.Contains(err.Error(), "Input should be a finite number [type=finite_number,") {
				t.Errorf("error %q does not say the number must be finite", err)
			}
		})
	}
}
