package programfile

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/program/pysource"
)

// stageRender is one stage's messages as DSPy rendered them.
type stageRender struct {
	Stage    string            `json:"stage"`
	Inputs   json.RawMessage   `json:"inputs"`
	Messages []program.Message `json:"messages"`
}

// readRenders reads testdata/twostage/renders.json: the with_demos stage
// renders of DSPy's two-stage vectors (multi_stage.json).
func readRenders(t *testing.T) []stageRender {
	t.Helper()
	raw, err := os.ReadFile("testdata/twostage/renders.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Renders []stageRender `json:"renders"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Renders) != 2 {
		t.Fatalf("%d renders, want one per stage", len(v.Renders))
	}
	return v.Renders
}

// decodeInputs decodes a JSON object as program inputs.
func decodeInputs(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	v, err := program.DecodeJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	m := v.(*program.Map)
	inputs := map[string]any{}
	for _, k := range m.Keys() {
		inputs[k], _ = m.Get(k)
	}
	return inputs
}

// The two-stage folder (a string signature, a class of signatures.py and
// DSPy's saved state with demos) compiles to the predictors DSPy renders:
// each stage's messages equal DSPy 3.3.1's, demos and all.
func TestCompileTwoStageMatchesDSPy(t *testing.T) {
	t.Parallel()
	b, err := Load("testdata/twostage", "program.yaml", 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range c.Warnings { // the state was saved with python 3.11
		if strings.Contains(w, "dspy version") {
			t.Errorf("warning %q: the state is DSPy 3.3.1's", w)
		}
	}
	var ins, outs []string
	for _, f := range c.Built.Inputs {
		ins = append(ins, f.Name+": "+f.Type.String())
	}
	for _, o := range c.Built.Outputs {
		outs = append(outs, o.Stage+"."+o.Name)
	}
	if diff := cmp.Diff([]string{"question: str", "context: list[str]"}, ins); diff != "" {
		t.Errorf("program inputs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"rewrite.predict.search_query", "answer.predict.answer", "answer.predict.citations", "answer.predict.sufficient"}, outs); diff != "" {
		t.Errorf("program outputs (-want +got):\n%s", diff)
	}
	for _, r := range readRenders(t) {
		t.Run(r.Stage, func(t *testing.T) {
			st, pred, err := c.Stage(r.Stage)
			if err != nil {
				t.Fatal(err)
			}
			if st.Key != r.Stage {
				t.Errorf("stage %q, want %q", st.Key, r.Stage)
			}
			got := program.ChatAdapter{}.Format(pred.Signature(), pred.Demos(), decodeInputs(t, r.Inputs))
			if diff := cmp.Diff(r.Messages, got); diff != "" {
				t.Errorf("messages (-DSPy +compiled):\n%s", diff)
			}
		})
	}
}

// The built-in QA program's file, compiled with the seed's QA class read
// from Python and a state carrying the worked example's demos, renders the
// worked example exactly.
func TestCompileQAMatchesWorkedExample(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../program/testdata/vectors/worked_example_chat.json")
	if err != nil {
		t.Fatal(err)
	}
	var vec struct {
		Demos    json.RawMessage   `json:"demos"`
		Inputs   json.RawMessage   `json:"inputs"`
		Messages []program.Message `json:"messages"`
	}
	if err := json.Unmarshal(raw, &vec); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../program/pysource/testdata/readme_qa.py")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(append(QAFile(), "\nstate: qa_optimized.json\n"...))
	if err != nil {
		t.Fatal(err)
	}
	state := `{"predict.predict": {"traces": [], "train": [], "demos": ` + string(vec.Demos) + `,
 "signature": {"instructions": "Answer a question with detailed reasoning.", "fields": [
 {"prefix": "Question:", "description": "The question to answer"},
 {"prefix": "Reasoning:", "description": "${reasoning}"},
 {"prefix": "Answer:", "description": "A clear, comprehensive answer"},
 {"prefix": "Key Concepts:", "description": "Key concepts used in the answer"},
 {"prefix": "Question Type:", "description": "Type of question: factual, opinion, analytical"}]},
 "lm": null}, "metadata": {"dependency_versions": {"python": "3.12", "dspy": "3.3.1", "cloudpickle": "3.1"}}}`
	c, err := Compile(&Bundle{File: f, Source: src, State: []byte(state)})
	if err != nil {
		t.Fatal(err)
	}
	_, pred, err := c.Stage("")
	if err != nil {
		t.Fatal(err)
	}
	got := program.ChatAdapter{}.Format(pred.Signature(), pred.Demos(), decodeInputs(t, vec.Inputs))
	if diff := cmp.Diff(vec.Messages, got); diff != "" {
		t.Errorf("messages (-DSPy +compiled):\n%s", diff)
	}

	// Without state, the class read from Python is the built-in QA's.
	c, err = Compile(&Bundle{File: f, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	builtin, err := QA()
	if err != nil {
		t.Fatal(err)
	}
	inputs := map[string]any{"question": "Why?"}
	want := program.ChatAdapter{}.Format(builtin.Stages[0].Predict.Signature(), nil, inputs)
	got = program.ChatAdapter{}.Format(c.Built.Stages[0].Predict.Signature(), nil, inputs)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messages (-built-in +compiled):\n%s", diff)
	}
}

const oneClassStage = `name: one
source: sigs.py
stages:
  - key: extract
    module: Predict
    signature: Extract
`

// mixedSource holds a class pysource cannot serve (Extract) and one it
// can (Answer).
const mixedSource = "import dspy\n\nclass Extract(dspy.Signature):\n    \"\"\"Describe.\"\"\"\n    img: dspy.Image = dspy.InputField()\n    text: str = dspy.OutputField()\n\n" +
	"class Answer(dspy.Signature):\n    \"\"\"Answer.\"\"\"\n    question: str = dspy.InputField()\n    answer: str = dspy.OutputField()\n"

// A class of the source that no stage names does not stop the program,
// whatever it declares.
func TestCompileSkipsUnusedClasses(t *testing.T) {
	t.Parallel()
	f, err := Parse([]byte(strings.Replace(oneClassStage, "signature: Extract", "signature: Answer", 1)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(&Bundle{File: f, Source: []byte(mixedSource)})
	if err != nil {
		t.Fatalf("Compile: %v; want Answer served, Extract unused", err)
	}
	_, pred, err := c.Stage("extract")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pred.Signature().Instructions(), "Answer."; got != want {
		t.Errorf("instructions %q, want %q", got, want)
	}
}

func TestCompileRefuses(t *testing.T) {
	t.Parallel()
	report := "import dspy\nfrom pydantic import BaseModel, Field\n\n" +
		"class Report(BaseModel):\n    title: str = Field(pattern='^[A-Z]')\n\n" +
		"class Extract(dspy.Signature):\n    text: str = dspy.InputField()\n    report: Report = dspy.OutputField()\n"
	tests := []struct {
		name       string
		yaml       string
		source     string
		state      string
		want       string // the whole error
		wantTarget error  // errors.Is, when set
		wantIn     string // a part of the error, for errors program words
	}{
		{"unknown class", oneClassStage, "import dspy\n\nclass Other(dspy.Signature):\n    a: str = dspy.InputField()\n    b: str = dspy.OutputField()\n", "",
			`compile program one: 6:16: stages[0].signature: stage "extract": class Extract is not a dspy.Signature in sigs.py (its signatures: Other)`, nil, ""},
		{"source not in the bundle", oneClassStage, "", "",
			`compile program one: 6:16: stages[0].signature: stage "extract": class Extract: the bundle lacks the source sigs.py`, nil, ""},
		{"pydantic constraint in a model", oneClassStage, report, "",
			`compile program one: 6:16: stages[0].signature: stage "extract": class Extract: sigs.py:5:5: class Report: field title: constraint pattern=: not yet supported`, pysource.ErrNotYetSupported, ""},
		{"a class pysource cannot serve", oneClassStage, "class Extract(dspy.Signature):\n    text: str = dspy.InputField(desc=f\"{x}\")\n", "",
			`compile program one: 6:16: stages[0].signature: stage "extract": class Extract: sigs.py:2:38: field text: desc= is an f-string, computed when Python runs; write a plain string`, nil, ""},
		{"DSPy's special type", oneClassStage, mixedSource, "",
			`compile program one: 6:16: stages[0].signature: stage "extract": class Extract: sigs.py:5:10: unsupported type dspy.Image (DSPy's special types such as Image, Audio, History and Tool are not served)`, nil, ""},
		{"unreadable source", oneClassStage, "class Extract(dspy.Signature):\n    text: str = dspy.InputField(desc=\"abc)\n", "",
			"compile program one: read source: sigs.py:2:38: unterminated string", nil, ""},
		{"state of another program", strings.Replace(oneClassStage, "signature: Extract", `signature: "text -> title"`, 1) + "state: s.json\n", "", `{"other.predict": {"demos": [], "signature": {"instructions": "x", "fields": [{"prefix": "A:", "description": "a"}, {"prefix": "B:", "description": "b"}]}}, "metadata": {"dependency_versions": {"python": "3.12", "dspy": "3.3.1", "cloudpickle": "3.1"}}}`,
			"", nil, `predictor "extract"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			b := &Bundle{File: f}
			if tc.source != "" {
				b.Source = []byte(tc.source)
			}
			if tc.state != "" {
				b.State = []byte(tc.state)
			}
			c, err := Compile(b)
			if err == nil {
				t.Fatalf("compiled %+v, want an error", c.Built)
			}
			if tc.want != "" && err.Error() != tc.want {
				t.Errorf("error\n %q\nwant\n %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("error %q lacks %q", err, tc.wantIn)
			}
			if tc.wantTarget != nil && !errors.Is(err, tc.wantTarget) {
				t.Errorf("error %v is not %v", err, tc.wantTarget)
			}
		})
	}
}

func TestCompiledStage(t *testing.T) {
	t.Parallel()
	b, err := Load(filepath.Join("testdata", "twostage"), "program.yaml", 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(b)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"":       "program two-stage has 2 stages, name one: rewrite.predict, answer.predict",
		"answer": `program two-stage has no stage "answer"; its stages: rewrite.predict, answer.predict`,
	} {
		if _, _, err := c.Stage(key); err == nil || err.Error() != want {
			t.Errorf("Stage(%q): %v, want %q", key, err, want)
		}
	}
}
