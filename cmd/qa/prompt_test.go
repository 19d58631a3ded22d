package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const vectorsDir = "../../program/testdata/vectors"
const statesDir = "../../program/testdata/real-states"

type runOutput struct {
	code           int
	stdout, stderr string
}

func runQA(t *testing.T, stdin string, args ...string) runOutput {
	t.Helper()
	var out, errOut bytes.Buffer
	e := env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	code := run(context.Background(), e, args)
	return runOutput{code: code, stdout: out.String(), stderr: errOut.String()}
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// writeDemoState saves the vector's demos as a state for the QA program, the
// way module.save would after setting cot.predict.demos.
func writeDemoState(t *testing.T, demos json.RawMessage) string {
	t.Helper()
	state := `{"predict.predict": {"traces": [], "train": [], "demos": ` + string(demos) + `,
 "signature": {"instructions": "Answer a question with detailed reasoning.", "fields": [
 {"prefix": "Question:", "description": "The question to answer"},
 {"prefix": "Reasoning:", "description": "${reasoning}"},
 {"prefix": "Answer:", "description": "A clear, comprehensive answer"},
 {"prefix": "Key Concepts:", "description": "Key concepts used in the answer"},
 {"prefix": "Question Type:", "description": "Type of question: factual, opinion, analytical"}]},
 "lm": null}, "metadata": {"dependency_versions": {"python": "3.12", "dspy": "3.3.1", "cloudpickle": "3.1"}}}`
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPromptVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file    string
		adapter string
	}{
		{"worked_example_chat.json", "chat"},
		{"worked_example_json_fallback.json", "json"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join(vectorsDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var vec struct {
				Demos    json.RawMessage `json:"demos"`
				Inputs   json.RawMessage `json:"inputs"`
				Messages []message       `json:"messages"`
			}
			if err := json.Unmarshal(raw, &vec); err != nil {
				t.Fatal(err)
			}
			state := writeDemoState(t, vec.Demos)
			inputsFile := filepath.Join(t.TempDir(), "inputs.json")
			if err := os.WriteFile(inputsFile, vec.Inputs, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, inputs := range []string{string(vec.Inputs), "@" + inputsFile} {
				res := runQA(t, "", "prompt", "--adapter", tc.adapter, "--state", state, "--inputs", inputs)
				if res.code != 0 {
					t.Fatalf("exit %d: %s", res.code, res.stderr)
				}
				var got []message
				if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
					t.Fatalf("output is not a JSON list: %v\n%s", err, res.stdout)
				}
				if diff := cmp.Diff(vec.Messages, got); diff != "" {
					t.Errorf("messages (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestPromptPrintsPythonStyleJSON(t *testing.T) {
	t.Parallel()
	res := runQA(t, "", "prompt", "--signature", "question -> answer", "--instructions", "Say <hi> & go/now", "--inputs", `{"question": "é?"}`)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	want := `[
  {
    "role": "system",
    "content": "Your input fields are:\n1. ` + "`question`" + ` (str):\nYour output fields are:\n1. ` + "`answer`" + ` (str):\nAll interactions will be structured in the following way, with the appropriate values filled in.\n\n[[ ## question ## ]]\n{question}\n\n[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]\nIn adhering to this structure, your objective is: \n        Say <hi> & go/now"
  },
  {
    "role": "user",
    "content": "[[ ## question ## ]]\né?\n\nRespond with the corresponding output fields, starting with the field ` + "`[[ ## answer ## ]]`" + `, and then ending with the marker for ` + "`[[ ## completed ## ]]`" + `."
  }
]
`
	if diff := cmp.Diff(want, res.stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
}

func TestPromptStates(t *testing.T) {
	t.Parallel()
	karthik := filepath.Join(statesDir, "karthik-strikes__DSPy_extraction_working_notebooks__optimized.json")
	ishaan := filepath.Join(statesDir, "ishaan1516__Rag_GST_Guide__artifacts__optimized_program.json")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{"module inferred from the state", []string{"--signature", "question -> answer", "--state", karthik, "--inputs", `{"question": "q"}`},
			0, "1. `reasoning` (str): ", "warning: There is a mismatch of dspy version"},
		{"ambiguous state lists keys", []string{"--signature", "question -> search_query", "--state", ishaan, "--inputs", `{"question": "q"}`},
			1, "", "2 predictors, choose one with --predictor: rewrite.predict, answer.predict"},
		{"predictor picked", []string{"--signature", "question -> search_query", "--module", "cot", "--state", ishaan, "--predictor", "rewrite.predict", "--inputs", `{"question": "q"}`},
			0, "Rewrite a user question into a search query", ""},
		{"unknown predictor", []string{"--signature", "question -> answer", "--state", ishaan, "--predictor", "nope", "--inputs", `{"question": "q"}`},
			1, "", `no predictor "nope"; choose --predictor from: rewrite.predict, answer.predict`},
		{"field count mismatch", []string{"--state", karthik, "--inputs", `{"question": "q"}`},
			1, "", `predictor "predict": the state has 3 fields (question, reasoning, answer), the program 5 (question, reasoning, answer, key_concepts, question_type)`},
		{"missing inputs", []string{}, 1, "", "--inputs is required"},
		{"bad inputs", []string{"--inputs", `[1]`}, 1, "", "want a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := runQA(t, "", append([]string{"prompt"}, tc.args...)...)
			if res.code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", res.code, tc.wantCode, res.stderr)
			}
			if !strings.Contains(res.stdout, tc.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.wantStdout, res.stdout)
			}
			if !strings.Contains(res.stderr, tc.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantStderr, res.stderr)
			}
		})
	}
}

func TestParseVector(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(vectorsDir, "chat_parse_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vec struct {
		Signature string `json:"signature"`
		Cases     map[string]struct {
			Completion string         `json:"completion"`
			Result     map[string]any `json:"result"`
			Error      string         `json:"error"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &vec); err != nil {
		t.Fatal(err)
	}
	for name, tc := range vec.Cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res := runQA(t, tc.Completion, "parse", "--signature", vec.Signature)
			if tc.Error != "" {
				if res.code != 1 || !strings.HasPrefix(res.stderr, "qa parse: Adapter ChatAdapter failed to parse the LM response.") ||
					!strings.Contains(res.stderr, "Expected to find output fields in the LM response: [reasoning, answer, n]") {
					t.Errorf("exit %d, stderr %q", res.code, res.stderr)
				}
				return
			}
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.Result, got); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseQAAndJSON(t *testing.T) {
	t.Parallel()
	res := runQA(t, `{"reasoning": "r", "answer": "a", "key_concepts": "k", "question_type": "factual"}`, "parse", "--adapter", "json")
	want := "{\n  \"reasoning\": \"r\",\n  \"answer\": \"a\",\n  \"key_concepts\": \"k\",\n  \"question_type\": \"factual\"\n}\n"
	if res.code != 0 || res.stdout != want {
		t.Errorf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runQA(t, "[[ ## answer ## ]]\nonly", "parse")
	if res.code != 1 || !strings.Contains(res.stderr, "Actual output fields parsed from the LM response: [answer]") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}
