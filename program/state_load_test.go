package program

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readState(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "states", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// stage is one predictor of a test program: its key, DSPy's string
// signature and whether it is a ChainOfThought.
type stage struct {
	key, sig string
	cot      bool
}

func stagesProgram(t testing.TB, stages ...stage) *Program {
	t.Helper()
	var preds []NamedPredict
	for _, s := range stages {
		sig, err := ParseSignature(s.sig, "")
		if err != nil {
			t.Fatal(err)
		}
		pred := NewPredict(sig)
		if s.cot {
			if pred, err = NewChainOfThought(sig); err != nil {
				t.Fatal(err)
			}
		}
		preds = append(preds, NamedPredict{Key: s.key, Predict: pred})
	}
	p, err := NewProgram(preds...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The programs of shared/dspy/vectors-typed/multi_stage.json's
// program_source.
var (
	rewriteStage = stage{"rewrite.predict", "question -> search_query", true}
	answerStage  = stage{"answer.predict", "question, context: list[str] -> answer, citations: list[str], sufficient: bool", true}
)

func twoStage(t testing.TB) *Program { return stagesProgram(t, rewriteStage, answerStage) }

// TestTwoStageState loads DSPy 3.3.1's save of the two-stage program and
// re-saves it byte for byte (bar the writer's versions).
func TestTwoStageState(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"two_stage.json", "two_stage_demos.json"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			data := readState(t, file)
			p, warnings, err := twoStage(t).WithState(data, file)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 2 { // python 3.11, cloudpickle 2.1
				t.Errorf("warnings = %q, want 2", warnings)
			}
			saved, err := p.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(withoutMetadata(data), withoutMetadata(saved)); diff != "" {
				t.Errorf("re-saved state differs (-file +saved):\n%s", diff)
			}
		})
	}
}

// TestStateWithoutMetadata loads json.dumps(module.dump_state()): no
// metadata, so no version warnings, and the same program as DSPy's save.
func TestStateWithoutMetadata(t *testing.T) {
	t.Parallel()
	p, warnings, err := twoStage(t).WithState(readState(t, "two_stage_dump_state.json"), "dump.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %q, want none", warnings)
	}
	fromSave, _, err := twoStage(t).WithState(readState(t, "two_stage.json"), "two_stage.json")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.MarshalState()
	b, _ := fromSave.MarshalState()
	if diff := cmp.Diff(string(b), string(a)); diff != "" {
		t.Errorf("program from dump_state differs from the one from save (-save +dump):\n%s", diff)
	}
}

// TestStateDemosIncompleteAndExtraKeys loads demos that lack fields or
// carry keys the signature does not have, and saves them as DSPy would.
func TestStateDemosIncompleteAndExtraKeys(t *testing.T) {
	t.Parallel()
	p, _, err := twoStage(t).WithState(readState(t, "two_stage_dump_state_demos.json"), "demos.json")
	if err != nil {
		t.Fatal(err)
	}
	pred, _ := p.Predict("answer.predict")
	demos := pred.Demos()
	if len(demos) != 2 {
		t.Fatalf("demos = %d, want 2", len(demos))
	}
	if v, _ := demos[0].Get("augmented"); v != true {
		t.Errorf("demo 0 augmented = %v, want true", v)
	}
	if demos[1].Has("reasoning") || demos[1].Has("context") {
		t.Errorf("labeled demo gained fields: %v", demos[1].Keys())
	}
	if v, _ := demos[1].Get("question"); v != "Où est Zürich?" {
		t.Errorf("labeled demo question = %q", v)
	}
	saved, err := p.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(readState(t, "two_stage_dump_state_demos.saved.json")), string(saved)); diff != "" {
		t.Errorf("saved state (-DSPy +ours):\n%s", diff)
	}
}

// TestStateMismatch refuses a state made for another program with one error
// naming every difference, and leaves the program as it was. The programs
// are multi_stage.json's (ThreeStage, OneStage, Renamed, DifferentFields)
// and a few more; DSPy loads some of them silently (OneStage,
// DifferentFields) or fails on the first difference.
func TestStateMismatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		stages []stage
		want   []string
	}{
		{
			"ThreeStage: a program predictor the state lacks",
			[]stage{rewriteStage, answerStage, {"verify", "answer -> ok: bool", false}},
			[]string{`predictor "verify" is not in the state (it has "rewrite.predict", "answer.predict")`},
		},
		{
			"OneStage: a state predictor the program lacks",
			[]stage{answerStage},
			[]string{`predictor "rewrite.predict" is not in the program (it has "answer.predict")`},
		},
		{
			"Renamed",
			[]stage{rewriteStage, {"respond.predict", answerStage.sig, true}},
			[]string{
				`predictor "answer.predict" is not in the program (it has "rewrite.predict", "respond.predict")`,
				`predictor "respond.predict" is not in the state (it has "rewrite.predict", "answer.predict")`,
			},
		},
		{
			"DifferentFields: field counts, reasoning counted",
			[]stage{{"rewrite.predict", "question -> search_query, alt_query", true}, {"answer.predict", "question -> answer", true}},
			[]string{
				`predictor "rewrite.predict": the state has 3 fields (question, reasoning, search_query), the program 4 (question, reasoning, search_query, alt_query)`,
				`predictor "answer.predict": the state has 6 fields (question, context, reasoning, answer, citations, sufficient), the program 3 (question, reasoning, answer)`,
			},
		},
		{
			"Predict where the state has a ChainOfThought",
			[]stage{{"rewrite.predict", "question -> search_query", false}, answerStage},
			[]string{`predictor "rewrite.predict": the state has 3 fields (question, reasoning, search_query), the program 2 (question, search_query)`},
		},
		{
			"same count, other names",
			[]stage{{"rewrite.predict", "query -> search_query", true}, {"answer.predict", "question, passages: list[str] -> answer, sources: list[str], sufficient: bool", true}},
			[]string{
				`predictor "rewrite.predict": the state has fields (question, reasoning, search_query), the program (query, reasoning, search_query)`,
				`predictor "answer.predict": the state has fields (question, context, reasoning, answer, citations, sufficient), the program (question, passages, reasoning, answer, sources, sufficient)`,
			},
		},
		{
			"every kind at once",
			[]stage{{"rewrite.predict", "query -> search_query", true}, {"verify", "answer -> ok: bool", false}},
			[]string{
				`predictor "answer.predict" is not in the program (it has "rewrite.predict", "verify")`,
				`predictor "verify" is not in the state (it has "rewrite.predict", "answer.predict")`,
				`predictor "rewrite.predict": the state has fields (question, reasoning, search_query), the program (query, reasoning, search_query)`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, file := range []string{"two_stage.json", "two_stage_dump_state.json"} {
				prog := stagesProgram(t, tc.stages...)
				before, err := prog.MarshalState()
				if err != nil {
					t.Fatal(err)
				}
				got, _, err := prog.WithState(readState(t, file), "optimized.json")
				if got != nil {
					t.Errorf("%s: returned a program with the error %v", file, err)
				}
				var me *StateMismatchError
				if !errors.As(err, &me) {
					t.Fatalf("%s: err = %v, want *StateMismatchError", file, err)
				}
				if diff := cmp.Diff(tc.want, me.Differences); diff != "" {
					t.Errorf("%s: differences (-want +got):\n%s", file, diff)
				}
				if want := "state optimized.json: " + strings.Join(tc.want, "; "); err.Error() != want {
					t.Errorf("%s: error =\n%s\nwant\n%s", file, err, want)
				}
				after, _ := prog.MarshalState()
				if string(after) != string(before) || prog.Provenance() != sha256Hex(before) {
					t.Errorf("%s: a refused load changed the program", file)
				}
			}
		})
	}
}

// TestStateFieldNamesReadLoosely accepts states whose field texts were
// changed by an optimizer (COPRO rewrites the last field's prefix) or by
// the project (prefix=, desc=): a name is compared only when the state
// shows it.
func TestStateFieldNamesReadLoosely(t *testing.T) {
	t.Parallel()
	state := `{"predict": {"demos": [], "signature": {"instructions": "i", "fields": [
		{"prefix": "Question:", "description": "what to answer"},
		{"prefix": "Reasoning: Let's think step by step in order to", "description": "${reasoning}"},
		{"prefix": "Final Answer (one word):", "description": "the answer"}]}}}`
	p, _, err := cotProgram(t, "predict", "question -> answer").WithState([]byte(state), "s.json")
	if err != nil {
		t.Fatal(err)
	}
	f := p.Predictor().Predict.Signature().Fields()[2]
	if f.Name != "answer" || f.Prefix != "Final Answer (one word):" || f.Desc != "the answer" {
		t.Errorf("answer field after load = %+v", f)
	}
}

// TestQAStateMismatch: the QA program refuses a state saved for another
// program, naming each difference.
func TestQAStateMismatch(t *testing.T) {
	t.Parallel()
	good := string(readRealState(t, "karthik-strikes__DSPy_extraction_working_notebooks__optimized.json"))
	tests := []struct {
		name, data, want string
	}{
		{"other key", good, `state bad.json: predictor "predict" is not in the program (it has "predict.predict"); ` +
			`predictor "predict.predict" is not in the state (it has "predict")`},
		{"field count", strings.Replace(good, `"predict"`, `"predict.predict"`, 1), `state bad.json: predictor "predict.predict": ` +
			`the state has 3 fields (question, reasoning, answer), the program 5 (question, reasoning, answer, key_concepts, question_type)`},
		{"no predictors", `{"metadata": {"dependency_versions": {}}}`, `state bad.json: predictor "predict.predict" is not in the state (it has no predictors)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, _, err := NewQA().WithState([]byte(tc.data), "bad.json")
			var me *StateMismatchError
			if p != nil || !errors.As(err, &me) || err.Error() != tc.want {
				t.Errorf("WithState = %v, %v; want no program and\n%s", p, err, tc.want)
			}
		})
	}
}

// TestPredictWithState loads one stage of a saved program and refuses a
// stage the file lacks or whose fields differ.
func TestPredictWithState(t *testing.T) {
	t.Parallel()
	data := readState(t, "two_stage_demos.json")
	whole, _, err := twoStage(t).WithState(data, "two_stage_demos.json")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := whole.Predict("answer.predict")
	base, _ := twoStage(t).Predict("answer.predict")
	got, warnings, err := base.WithState(data, "two_stage_demos.json", "answer.predict")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 {
		t.Errorf("warnings = %q, want 2", warnings)
	}
	if diff := cmp.Diff(want.dumpState(), got.dumpState(), cmp.Comparer(func(a, b *Map) bool {
		x, _ := encodeJSON(a, styleOrjsonIndent)
		y, _ := encodeJSON(b, styleOrjsonIndent)
		return string(x) == string(y)
	})); diff != "" {
		t.Errorf("stage state differs from the whole program's (-whole +stage):\n%s", diff)
	}
	refusals := []struct{ key, want string }{
		{"verify", `state s.json: predictor "verify" is not in the state (it has "rewrite.predict", "answer.predict")`},
		{"metadata", `state s.json: predictor "metadata" is not in the state (it has "rewrite.predict", "answer.predict")`},
		{"rewrite.predict", `state s.json: predictor "rewrite.predict": the state has 3 fields (question, reasoning, search_query), the program 6 (question, context, reasoning, answer, citations, sufficient)`},
	}
	for _, r := range refusals {
		p, _, err := base.WithState(data, "s.json", r.key)
		var me *StateMismatchError
		if p != nil || !errors.As(err, &me) || err.Error() != r.want {
			t.Errorf("WithState(%q) = %v, %v; want no predictor and\n%s", r.key, p, err, r.want)
		}
	}
}

// TestMultiStageLoadVector loads the two-stage state into each program of
// multi_stage.json's load_state_file_into, built from the signatures DSPy
// recorded: the program it was saved from loads to DSPy's state_after;
// every other one is refused, including the two DSPy loads without an
// error (OneStage; DifferentFields, which it corrupts).
func TestMultiStageLoadVector(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors", "multi_stage.json"))
	if err != nil {
		t.Fatal(err)
	}
	type field struct{ Name, Annotation string }
	var vec struct {
		Cases []struct {
			Target string   `json:"target_program"`
			OK     bool     `json:"ok"`
			Named  []string `json:"target_named_predictors"`
			Sigs   map[string]struct {
				In  []field `json:"input_fields"`
				Out []field `json:"output_fields"`
			} `json:"target_predictor_signatures_after"`
			StateAfter map[string]any `json:"state_after"`
		} `json:"load_state_file_into"`
	}
	if err := json.Unmarshal(raw, &vec); err != nil {
		t.Fatal(err)
	}
	if len(vec.Cases) != 5 {
		t.Fatalf("%d cases, want 5", len(vec.Cases))
	}
	spec := func(fs []field) string {
		parts := make([]string, len(fs))
		for i, f := range fs {
			parts[i] = f.Name
			if f.Annotation != "str" {
				parts[i] += ": " + f.Annotation
			}
		}
		return strings.Join(parts, ", ")
	}
	data := readState(t, "two_stage.json")
	for _, c := range vec.Cases {
		var stages []stage
		for _, key := range c.Named {
			sig := c.Sigs[key]
			cot := len(sig.Out) > 0 && sig.Out[0].Name == "reasoning"
			out := sig.Out
			if cot {
				out = out[1:]
			}
			stages = append(stages, stage{key, spec(sig.In) + " -> " + spec(out), cot})
		}
		p, _, err := stagesProgram(t, stages...).WithState(data, "two_stage.json")
		if c.Target != "TwoStage" {
			var me *StateMismatchError
			if p != nil || !errors.As(err, &me) {
				t.Errorf("%s (DSPy ok=%v): loaded, err %v; want a StateMismatchError", c.Target, c.OK, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Target, err)
		}
		saved, _ := p.MarshalState()
		var got map[string]any
		if err := json.Unmarshal(saved, &got); err != nil {
			t.Fatal(err)
		}
		delete(got, "metadata")
		if diff := cmp.Diff(c.StateAfter, got); diff != "" {
			t.Errorf("%s: state after load (-DSPy +ours):\n%s", c.Target, diff)
		}
	}
}
