package program_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/program"
)

// schemaLM is a recordingLM that says whether its model takes a
// json_schema response_format, as lmclient does from
// LM_STRUCTURED_OUTPUTS.
type schemaLM struct {
	recordingLM
	supports bool
}

func (l *schemaLM) SupportsResponseSchema() bool { return l.supports }

// DSPy's JSONAdapter asks for structured outputs only when the LM supports
// a response schema; otherwise its fall-back goes straight to JSON mode.
func TestRunStructuredOutputsFollowTheLM(t *testing.T) {
	t.Parallel()
	sig, err := program.ParseSignature("question -> answer: int", "")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := program.NewProgram(program.NamedPredict{Key: "predict", Predict: program.NewPredict(sig)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		supports bool
		want     []string
	}{
		{true, []string{"", "json_schema", "json_object"}},
		{false, []string{"", "json_object"}},
	} {
		lm := &schemaLM{supports: tc.supports}
		var pe *program.ParseError
		if _, err := prog.Run(context.Background(), lm, map[string]any{"question": "q"}, nil); !errors.As(err, &pe) {
			t.Fatalf("Run = %v, want a parse error", err)
		}
		var got []string
		for _, req := range lm.reqs {
			if req.ResponseFormat == nil {
				got = append(got, "")
			} else {
				got = append(got, req.ResponseFormat.Type)
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("supports=%v: response formats (-want +got):\n%s", tc.supports, diff)
		}
	}
}
