package program

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readRealState(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "real-states", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// cotProgram builds a ChainOfThought program per key from string signatures.
func cotProgram(t testing.TB, keysAndSigs ...string) *Program {
	t.Helper()
	var preds []NamedPredict
	for i := 0; i < len(keysAndSigs); i += 2 {
		sig, err := ParseSignature(keysAndSigs[i+1], "")
		if err != nil {
			t.Fatal(err)
		}
		cot, err := NewChainOfThought(sig)
		if err != nil {
			t.Fatal(err)
		}
		preds = append(preds, NamedPredict{Key: keysAndSigs[i], Predict: cot})
	}
	p, err := NewProgram(preds...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type realStateCase struct {
	file         string
	program      func(t *testing.T) *Program
	wantWarnings int
	// writer3x marks files written by DSPy >= 3.0.3 (orjson), which must
	// re-save byte for byte apart from metadata.
	writer3x bool
	// renderKey is the predictor to render; default the first.
	renderKey string
	// inputs for rendering the first predictor, and substrings the
	// rendered messages must contain.
	inputs       map[string]any
	wantContains []string
	wantRoles    []string
}

func realStateCases() []realStateCase {
	return []realStateCase{
		{
			file:         "karthik-strikes__DSPy_extraction_working_notebooks__optimized.json",
			program:      func(t *testing.T) *Program { return cotProgram(t, "predict", "question -> answer") },
			wantWarnings: 2, // python 3.11 and dspy 3.0.3
			writer3x:     true,
			inputs:       map[string]any{"question": "What is 2+2?"},
			wantContains: []string{
				"1. `reasoning` (str): \n2. `answer` (str):\nAll interactions",
				"your objective is: \n        You are an AI system performing mission-critical calculations",
				// The labeled demo lacks reasoning: incomplete, so it comes first.
				"This is an example of the task, though some input or output fields are not supplied.\n\n[[ ## question ## ]]\nNancy bought a pie",
			},
			// system, incomplete pair, three complete pairs, user.
			wantRoles: []string{"system", "user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant", "user"},
		},
		{
			file: "ishaan1516__Rag_GST_Guide__artifacts__optimized_program.json",
			program: func(t *testing.T) *Program {
				return cotProgram(t, "rewrite.predict", "question -> search_query",
					"answer.predict", "question, context -> answer, citations: list[str], sufficient: bool")
			},
			renderKey: "answer.predict",
			writer3x:  true,
			inputs:    map[string]any{"question": "What is ITC?", "context": []any{"[1] s.16", "[2] s.17"}},
			wantContains: []string{
				"2. `context` (str): numbered excerpts with chapter and section\n",
				"3. `citations` (list[str]): chunk_ids actually used\n4. `sufficient` (bool): whether the context answered the question\n",
				"{citations}        # note: the value you produce must adhere to the JSON schema: {\"type\": \"array\", \"items\": {\"type\": \"string\"}}",
				"{sufficient}        # note: the value you produce must be True or False",
				"your objective is: \n        Answer strictly from the provided GST reference excerpts. Cite the\n        chunk_id supporting each claim.",
				"[[ ## context ## ]]\n[1] «[1] s.16»\n[2] «[2] s.17»",
				"`[[ ## citations ## ]]` (must be formatted as a valid Python list[str]), then `[[ ## sufficient ## ]]` (must be formatted as a valid Python bool)",
			},
			wantRoles: []string{"system", "user"},
		},
		{
			file:         "HoneyOak__Optimising-LLMs__optimized_program.json",
			program:      func(t *testing.T) *Program { return cotProgram(t, "respond.predict", "context, question -> response") },
			wantWarnings: 1, // dspy 2.6.27
			inputs:       map[string]any{"context": "c", "question": "q"},
			wantContains: []string{
				// The bootstrapped demo is complete; its context list is numbered.
				"[[ ## context ## ]]\n[1] «Manesar to add ~100k capacity by March 2024.»\n[2] «Kharkhoda",
				// Labeled demos have no context: incomplete, first, context skipped.
				"This is an example of the task, though some input or output fields are not supplied.\n\n[[ ## question ## ]]\nWhat share did SUVs",
			},
			wantRoles: []string{"system", "user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant", "user"},
		},
		{
			file:         "knutole__dspy-demo__optimized_program.json",
			program:      func(t *testing.T) *Program { return cotProgram(t, "chain.predict", "text -> clean_text") },
			wantWarnings: 1, // dspy 2.6.25
			inputs:       map[string]any{"text": "hei"},
			wantContains: []string{
				"1. `text` (str): The text to clean\n",
				"2. `clean_text` (str): The cleaned text\n",
				"[[ ## clean_text ## ]]\nJeg visste at pakken kom",
			},
			wantRoles: []string{"system", "user", "assistant", "user", "assistant", "user", "assistant", "user"},
		},
	}
}

func TestRealStates(t *testing.T) {
	t.Parallel()
	for _, tc := range realStateCases() {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			data := readRealState(t, tc.file)
			p, warnings, err := tc.program(t).WithState(data, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != tc.wantWarnings {
				t.Errorf("warnings = %q, want %d", warnings, tc.wantWarnings)
			}
			if p.Provenance() != sha256Hex(data) {
				t.Error("provenance is not the sha256 of the file")
			}
			pred := p.Predictor().Predict
			if tc.renderKey != "" {
				var ok bool
				if pred, ok = p.Predict(tc.renderKey); !ok {
					t.Fatalf("no predictor %q", tc.renderKey)
				}
			}
			msgs := ChatAdapter{}.Format(pred.Signature(), pred.Demos(), tc.inputs)
			var all strings.Builder
			var roles []string
			for _, m := range msgs {
				roles = append(roles, m.Role)
				all.WriteString(m.Content + "\x00")
			}
			if diff := cmp.Diff(tc.wantRoles, roles); diff != "" {
				t.Errorf("roles (-want +got):\n%s", diff)
			}
			for _, s := range tc.wantContains {
				if !strings.Contains(all.String(), s) {
					t.Errorf("messages lack %q", s)
				}
			}
			// Prefixes are loaded positionally even though prompts ignore them.
			if f := pred.Signature().Fields()[len(pred.Signature().Inputs())]; f.Name != "reasoning" || !strings.HasPrefix(f.Prefix, "Reasoning:") {
				t.Errorf("reasoning field after load = %+v", f)
			}
			if tc.writer3x {
				saved, err := p.MarshalState()
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(withoutMetadata(data), withoutMetadata(saved)); diff != "" {
					t.Errorf("re-saved state differs (-file +saved):\n%s", diff)
				}
			}
		})
	}
}

// withoutMetadata cuts the bytes at the metadata key, the part of a file
// that records the writer's versions.
func withoutMetadata(b []byte) string {
	i := bytes.Index(b, []byte("\n  \"metadata\": {"))
	if i < 0 {
		return string(b)
	}
	return string(b[:i])
}

func TestSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	data, err := NewQA().MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "predict.predict": {
    "traces": [],
    "train": [],
    "demos": [],
    "signature": {
      "instructions": "Answer a question with detailed reasoning.",
      "fields": [
        {
          "prefix": "Question:",
          "description": "The question to answer"
        },
        {
          "prefix": "Reasoning:",
          "description": "${reasoning}"
        },
        {
          "prefix": "Answer:",
          "description": "A clear, comprehensive answer"
        },
        {
          "prefix": "Key Concepts:",
          "description": "Key concepts used in the answer"
        },
        {
          "prefix": "Question Type:",
          "description": "Type of question: factual, opinion, analytical"
        }
      ]
    },
    "lm": null
  },
  "metadata": {
    "dependency_versions": {
      "python": "3.12",
      "dspy": "3.3.1",
      "cloudpickle": "3.1"
    }
  }
}
`
	if diff := cmp.Diff(want, string(data)); diff != "" {
		t.Errorf("saved state (-want +got):\n%s", diff)
	}
	p, warnings, err := NewQA().WithState(data, "qa.json")
	if err != nil || len(warnings) != 0 {
		t.Fatalf("load own state: %v %q", err, warnings)
	}
	if p.Provenance() != NewQA().Provenance() {
		t.Error("provenance of the canonical state and of its file differ")
	}
}

func TestStateErrors(t *testing.T) {
	t.Parallel()
	good := string(readRealState(t, "karthik-strikes__DSPy_extraction_working_notebooks__optimized.json"))
	tests := []struct {
		name    string
		data    string
		program *Program
		wantKey string
		wantMsg string
	}{
		{"malformed JSON", `{"predict": `, nil, "", "expected a JSON object"},
		{"not an object", `[1]`, nil, "", "expected a JSON object at the top level"},
		{"metadata not an object", `{"predict": {}, "metadata": []}`, nil, "metadata", "dependency_versions"},
		{"signature fields malformed", strings.Replace(good, `"fields": [`, `"fields": [3, `, 1), nil, "predict.signature.fields[0]", `expected a {"prefix", "description"} object`},
		{"extended signature", `{"predict": {"extended_signature": {}}, "metadata": {"dependency_versions": {}}}`, nil, "predict.extended_signature", "no longer supported"},
		{"unknown version key", `{"metadata": {"dependency_versions": {"torch": "2"}}}`, nil, "metadata.dependency_versions.torch", "expected one of"},
		{"demos not a list", `{"predict": {"demos": 3, "signature": {}}, "metadata": {"dependency_versions": {}}}`, nil, "predict.demos", "expected a list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.program
			if p == nil {
				p = cotProgram(t, "predict", "question -> answer")
			}
			_, _, err := p.WithState([]byte(tc.data), "bad.json")
			var se *StateError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *StateError", err)
			}
			if se.File != "bad.json" || se.Key != tc.wantKey || !strings.Contains(se.Expected, tc.wantMsg) {
				t.Errorf("err = %v (key %q), want key %q and %q", err, se.Key, tc.wantKey, tc.wantMsg)
			}
		})
	}
}

func TestVersionWarningText(t *testing.T) {
	t.Parallel()
	data := readRealState(t, "HoneyOak__Optimising-LLMs__optimized_program.json")
	_, warnings, err := cotProgram(t, "respond.predict", "context, question -> response").WithState(data, "h.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"There is a mismatch of dspy version between saved model and current environment. You saved with `dspy==2.6.27`, but now you have `dspy==3.3.1`. This might cause errors or performance downgrade on the loaded model, please consider loading the model in the same environment as the saving environment."}
	if diff := cmp.Diff(want, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}
