package fakelm

import (
	"context"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/program/pysource"
)

// newLM is a real LM client on s, with structured as its
// StructuredOutputs ("" for the default), closed when the test ends.
func newLM(t *testing.T, s *Server, structured string) *lmclient.Client {
	t.Helper()
	lm, err := lmclient.New(lmclient.Config{Model: "openai/gpt-4o-mini", APIBase: s.URL(), StructuredOutputs: structured}, lmclient.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	return lm
}

// sourceSignature reads src as the user's file name is read and builds
// its class's signature.
func sourceSignature(tb testing.TB, name, src, class string) *program.Signature {
	tb.Helper()
	f, err := pysource.Read(name, []byte(src))
	if err != nil {
		tb.Fatal(err)
	}
	cls, err := f.Signature(class)
	if err != nil {
		tb.Fatal(err)
	}
	sig, err := cls.Signature()
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

// predictProgram is the one-stage program of pred, under the key
// "predict".
func predictProgram(t *testing.T, pred *program.Predict) *program.Program {
	t.Helper()
	p, err := program.NewProgram(program.NamedPredict{Key: "predict", Predict: pred})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTypedProgramRuns runs typed programs as a worker does (program.Run
// through lmclient over HTTP) on the fake: the chat attempt parses first
// time, and when it is garbled the JSON attempt (structured outputs, or
// json_object for a dict output) parses instead.
func TestTypedProgramRuns(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	lm := newLM(t, s, "")
	tests := []struct {
		spec   string
		garble bool // the first answer (the chat attempt's) is garbage
		format string
	}{
		{"claim -> count: int, score: float, is_true: bool, tags: list[str], counts: dict[str, int], kind: Literal['factual', 'opinion', 'analytical'], note: Optional[str]", false, program.FormatChat},
		{"claim -> count: int, score: float, is_true: bool, tags: list[str], counts: dict[str, int], kind: Literal['factual', 'opinion', 'analytical'], note: Optional[str]", true, program.FormatJSONObject},
		{"question, context: list[str] -> answer, confidence: float, sources: list[int] | None", true, program.FormatJSONSchema},
	}
	for _, tt := range tests {
		sig, err := program.ParseSignature(tt.spec, "")
		if err != nil {
			t.Fatal(err)
		}
		cot, err := program.NewChainOfThought(sig)
		if err != nil {
			t.Fatal(err)
		}
		p := predictProgram(t, cot)
		inputs := map[string]any{}
		for _, f := range sig.Inputs() {
			inputs[f.Name] = "Honeybees pollinate most crops in Europe."
			if !f.Type.IsStr() {
				inputs[f.Name] = []any{"Bees visit flowers."}
			}
		}
		if tt.garble {
			s.FailNext(1, Fault{Kind: FaultGarbage})
		}
		var streamed strings.Builder
		res, err := p.Run(context.Background(), lm, inputs, &program.RunOptions{NoCache: true,
			StreamFields: []string{"reasoning"}, OnChunk: func(_, c string) { streamed.WriteString(c) },
			OnReset: func(string) { streamed.Reset() }})
		if err != nil {
			t.Errorf("%s (%s): %v", tt.spec, tt.format, err)
			continue
		}
		if res.Format != tt.format {
			t.Errorf("%s (%s): parsed by %s, want %s", tt.spec, tt.format, res.Format, tt.format)
		}
		outs := cot.Signature().Outputs()
		if got, want := strings.Join(res.Outputs.Keys(), ","), strings.Join(cot.Signature().OutputNames(), ","); got != want {
			t.Errorf("%s: outputs %s, want %s", tt.spec, got, want)
		}
		for _, f := range outs {
			v, _ := res.Outputs.Get(f.Name)
			if err := checkKind(f.Type, v); err != nil {
				t.Errorf("%s (%s): %s: %v", tt.spec, tt.format, f.Name, err)
			}
		}
		if r, _ := res.Outputs.Get("reasoning"); streamed.String() != r {
			t.Errorf("%s: streamed reasoning %q, parsed %q", tt.spec, streamed.String(), r)
		}
	}
}

// findingsSource is a user's signature file with pydantic models: a list
// of models with a Literal, an optional nested model and defaults.
const findingsSource = `import dspy
from typing import Literal, Optional
from pydantic import BaseModel, Field

class Location(BaseModel):
    path: str
    line: int = 0

class Finding(BaseModel):
    """One problem found."""
    title: str = Field(description="Short title")
    severity: Literal["low", "medium", "high"]
    score: float
    fixed: bool = False
    where: Location
    also: Optional[Location] = None
    tags: list[str] = Field(default_factory=list)

class Audit(dspy.Signature):
    """Audit the code."""
    code: str = dspy.InputField()
    findings: list[Finding] = dspy.OutputField()
    worst: Finding = dspy.OutputField()
`

// TestModelProgramRuns runs a signature with pydantic model outputs on the
// fake through lmclient: the chat answer, the structured-outputs answer
// and the JSON-mode answer (types read from the prompt alone) each parse
// into objects with the models' fields of their types.
func TestModelProgramRuns(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	sig := sourceSignature(t, "audit.py", findingsSource, "Audit")
	p := predictProgram(t, program.NewPredict(sig))
	for _, tc := range []struct {
		structured string
		garble     bool
		format     string
	}{
		{"auto", false, program.FormatChat},
		{"auto", true, program.FormatJSONSchema},
		{"off", true, program.FormatJSONObject},
	} {
		lm := newLM(t, s, tc.structured)
		if tc.garble {
			s.FailNext(1, Fault{Kind: FaultGarbage})
		}
		res, err := p.Run(context.Background(), lm, map[string]any{"code": "func main() {}"}, &program.RunOptions{NoCache: true})
		if err != nil {
			t.Fatalf("%s: %v", tc.format, err)
		}
		if res.Format != tc.format {
			t.Errorf("parsed by %s, want %s", res.Format, tc.format)
		}
		for _, o := range sig.Outputs() {
			v, _ := res.Outputs.Get(o.Name)
			if err := checkKind(o.Type, v); err != nil {
				t.Errorf("%s: %s: %v", tc.format, o.Name, err)
			}
		}
	}
}

// TestConstrainedModelProgramRuns: a model whose fields carry pydantic
// constraints gets values within them, in every form.
func TestConstrainedModelProgramRuns(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	sig := sourceSignature(t, "grade.py", `import dspy
from typing import Optional
from pydantic import BaseModel, Field

class Score(BaseModel):
    value: float = Field(ge=0.0, le=1.0)
    step: float = Field(gt=0, multiple_of=0.25)
    rank: int = Field(ge=1, lt=4, multiple_of=2)
    label: str = Field(min_length=2, max_length=5)
    code: str = Field(min_length=40)
    tags: list[str] = Field(min_length=3, max_length=4)
    maybe: Optional[int] = Field(None, gt=100)

class Grade(dspy.Signature):
    essay: str = dspy.InputField()
    scores: list[Score] = dspy.OutputField()
`, "Grade")
	lm := newLM(t, s, "")
	p := predictProgram(t, program.NewPredict(sig))
	for _, garble := range []int{0, 1, 2} {
		s.FailNext(garble, Fault{Kind: FaultGarbage})
		res, err := p.Run(context.Background(), lm, map[string]any{"essay": "Bees matter."}, &program.RunOptions{NoCache: true})
		if err != nil {
			t.Fatalf("%d garbled answers: %v", garble, err)
		}
		if res.Calls != garble+1 {
			t.Errorf("%d garbled answers: %d calls", garble, res.Calls)
		}
	}
}
