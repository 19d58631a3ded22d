package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
)

// twoStageDir holds a two-stage program (a string signature and a class of
// signatures.py, DSPy's saved state with demos) and DSPy's renders of it.
const twoStageDir = "../../programfile/testdata/twostage"

var twoStageFile = filepath.Join(twoStageDir, "program.yaml")

// compileFile loads a program file with its source and state and compiles
// it as qa does, returning what it read and the program.
func compileFile(t *testing.T, file string) (*programfile.Bundle, *programfile.Compiled) {
	t.Helper()
	b, err := programfile.Load(filepath.Dir(file), filepath.Base(file), programMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	c, err := programfile.Compile(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

// compileTwoStage compiles the two-stage folder, for the expected values of
// program's own formatter and parsers.
func compileTwoStage(t *testing.T) *programfile.Compiled {
	t.Helper()
	_, c := compileFile(t, twoStageFile)
	return c
}

func stagePredict(t *testing.T, c *programfile.Compiled, key string) *program.Predict {
	t.Helper()
	_, pred, err := c.Stage(key)
	if err != nil {
		t.Fatal(err)
	}
	return pred
}

// qa prompt --program prints each stage's messages as DSPy 3.3.1 renders
// them with the program's state applied (demos included), in the chat
// form; in the JSON form, what program's JSONAdapter formats.
func TestPromptProgramStages(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(twoStageDir, "renders.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vec struct {
		Renders []struct {
			Stage    string          `json:"stage"`
			Inputs   json.RawMessage `json:"inputs"`
			Messages []message       `json:"messages"`
		} `json:"renders"`
	}
	if err := json.Unmarshal(raw, &vec); err != nil {
		t.Fatal(err)
	}
	c := compileTwoStage(t)
	for _, r := range vec.Renders {
		t.Run(r.Stage, func(t *testing.T) {
			t.Parallel()
			res := runQA(t, "", "prompt", "--program", twoStageFile, "--stage", r.Stage, "--inputs", string(r.Inputs))
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			var got []message
			if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
				t.Fatalf("output is not a JSON list: %v\n%s", err, res.stdout)
			}
			if diff := cmp.Diff(r.Messages, got); diff != "" {
				t.Errorf("chat messages (-DSPy +qa):\n%s", diff)
			}

			res = runQA(t, "", "prompt", "--program", twoStageFile, "--stage", r.Stage, "--adapter", "json", "--inputs", string(r.Inputs))
			if res.code != 0 {
				t.Fatalf("json: exit %d: %s", res.code, res.stderr)
			}
			inputs, err := readInputs(string(r.Inputs))
			if err != nil {
				t.Fatal(err)
			}
			pred := stagePredict(t, c, r.Stage)
			want, err := program.EncodeJSONIndent(program.JSONAdapter{}.Format(pred.Signature(), pred.Demos(), inputs))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want)+"\n", res.stdout); diff != "" {
				t.Errorf("json messages (-program +qa):\n%s", diff)
			}
			if !strings.Contains(res.stdout, "Who wrote Hamlet?") && r.Stage == "answer.predict" {
				t.Errorf("json messages lack the state's demo:\n%s", res.stdout)
			}
		})
	}
}

// A single-stage program needs no --stage, and its prompt is the one the
// same signature gives without a program file.
func TestPromptProgramSingleStage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	yaml := "name: judge\nstages:\n  - key: judge\n    module: Predict\n    signature: \"claim, quote -> supported: bool\"\n"
	if err := os.WriteFile(filepath.Join(dir, "judge.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	inputs := `{"claim": "It opened in 1889.", "quote": "The tower opened in 1889."}`
	got := runQA(t, "", "prompt", "--program", filepath.Join(dir, "judge.yaml"), "--inputs", inputs)
	want := runQA(t, "", "prompt", "--signature", "claim, quote -> supported: bool", "--inputs", inputs)
	if got.code != 0 || want.code != 0 {
		t.Fatalf("exit %d (%s), %d (%s)", got.code, got.stderr, want.code, want.stderr)
	}
	if diff := cmp.Diff(want.stdout, got.stdout); diff != "" {
		t.Errorf("stdout (-signature +program):\n%s", diff)
	}
	if !strings.Contains(got.stdout, "`supported` (bool)") {
		t.Errorf("stdout lacks the typed output:\n%s", got.stdout)
	}
}

func TestPromptProgramErrors(t *testing.T) {
	t.Parallel()
	question := `{"question": "q"}`
	tests := []struct {
		name string
		args []string
		want string // the whole of stderr
	}{
		{"stage omitted", []string{"--program", twoStageFile, "--inputs", question},
			"qa prompt: --stage: program two-stage has 2 stages, name one: rewrite.predict, answer.predict\n"},
		{"unknown stage", []string{"--program", twoStageFile, "--stage", "verify", "--inputs", question},
			"qa prompt: --stage: program two-stage has no stage \"verify\"; its stages: rewrite.predict, answer.predict\n"},
		{"missing input", []string{"--program", twoStageFile, "--stage", "answer.predict", "--inputs", question},
			"qa prompt: --inputs: missing input \"context\" of stage \"answer.predict\" (its inputs: question, context)\n"},
		{"state with program", []string{"--program", twoStageFile, "--state", "s.json", "--inputs", question},
			"qa prompt: --state cannot be combined with --program: the program file says it\n"},
		{"stage without program", []string{"--stage", "rewrite.predict", "--inputs", question},
			"qa prompt: --stage names a stage of --program FILE\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := runQA(t, "", append([]string{"prompt"}, tc.args...)...)
			if res.code != 1 || res.stdout != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", res.code, res.stdout)
			}
			if res.stderr != tc.want {
				t.Errorf("stderr\n %q\nwant\n %q", res.stderr, tc.want)
			}
		})
	}
}

// A program whose class the source lacks fails with one line naming the
// program file, the stage, the class and the source.
func TestPromptProgramUnknownClass(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	yaml := "name: one\nsource: sigs.py\nstages:\n  - key: extract\n    module: Predict\n    signature: Extract\n"
	for name, content := range map[string]string{"one.yaml": yaml, "sigs.py": "import dspy\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "one.yaml")
	res := runQA(t, "", "prompt", "--program", file, "--inputs", `{"text": "t"}`)
	want := "qa prompt: " + file + ": compile program one: 6:16: stages[0].signature: stage \"extract\": class Extract is not a dspy.Signature in sigs.py (its signatures: none)\n"
	if res.code != 1 || res.stderr != want {
		t.Errorf("exit %d, stderr\n %q\nwant\n %q", res.code, res.stderr, want)
	}
}

// qa parse --program parses a stage's completion with program's adapters:
// typed values in signature order, or DSPy's error naming the field.
func TestParseProgramStage(t *testing.T) {
	t.Parallel()
	c := compileTwoStage(t)
	sig := stagePredict(t, c, "answer.predict").Signature()
	tests := []struct {
		name       string
		adapter    program.Adapter
		completion string
	}{
		{"chat", program.ChatAdapter{}, "[[ ## reasoning ## ]]\nThe context says so.\n\n[[ ## answer ## ]]\nGustave Eiffel's company\n\n" +
			"[[ ## citations ## ]]\n[\"The tower was designed by Gustave Eiffel's engineering company.\"]\n\n[[ ## sufficient ## ]]\nTrue\n\n[[ ## completed ## ]]\n"},
		{"json", program.JSONAdapter{}, `{"reasoning": "r", "answer": "a", "citations": ["c1", "c2"], "sufficient": false}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := runQA(t, tc.completion, "parse", "--program", twoStageFile, "--stage", "answer.predict", "--adapter", tc.name)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			fields, err := tc.adapter.Parse(sig, tc.completion)
			if err != nil {
				t.Fatal(err)
			}
			want, err := program.EncodeJSONIndent(fields)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want)+"\n", res.stdout); diff != "" {
				t.Errorf("stdout (-program +qa):\n%s", diff)
			}
			var typed struct {
				Citations  []string `json:"citations"`
				Sufficient *bool    `json:"sufficient"`
			}
			if err := json.Unmarshal([]byte(res.stdout), &typed); err != nil || len(typed.Citations) == 0 || typed.Sufficient == nil {
				t.Errorf("not typed values (%v):\n%s", err, res.stdout)
			}
			if i, j := strings.Index(res.stdout, `"answer"`), strings.Index(res.stdout, `"sufficient"`); i < 0 || i > j {
				t.Errorf("fields not in signature order:\n%s", res.stdout)
			}
		})
	}
}

func TestParseProgramError(t *testing.T) {
	t.Parallel()
	c := compileTwoStage(t)
	completion := "[[ ## reasoning ## ]]\nR\n\n[[ ## search_query ## ]]\nq\n\n[[ ## completed ## ]]\n"
	// The answer stage's completion with a bool that is not one.
	bad := "[[ ## reasoning ## ]]\nR\n\n[[ ## answer ## ]]\nA\n\n[[ ## citations ## ]]\n[]\n\n[[ ## sufficient ## ]]\nperhaps\n\n[[ ## completed ## ]]\n"
	_, err := program.ChatAdapter{}.Parse(stagePredict(t, c, "answer.predict").Signature(), bad)
	if err == nil || !strings.Contains(err.Error(), "sufficient") {
		t.Fatalf("program's parse error %v does not name the field", err)
	}
	res := runQA(t, bad, "parse", "--program", twoStageFile, "--stage", "answer.predict")
	// The state was saved with python 3.11: DSPy's version warnings come first.
	warnings, msg, _ := strings.Cut(res.stderr, "qa parse: ")
	for _, w := range strings.Split(strings.TrimSuffix(warnings, "\n"), "\n") {
		if !strings.HasPrefix(w, "warning: There is a mismatch of ") {
			t.Errorf("stderr line %q before the error", w)
		}
	}
	if res.code != 1 || res.stdout != "" || msg != err.Error()+"\n" {
		t.Errorf("exit %d, stdout %q, error\n %q\nwant\n %q", res.code, res.stdout, msg, err.Error()+"\n")
	}
	// The first stage parses its own completion; --stage picks the signature.
	res = runQA(t, completion, "parse", "--program", twoStageFile, "--stage", "rewrite.predict")
	if want := "{\n  \"reasoning\": \"R\",\n  \"search_query\": \"q\"\n}\n"; res.code != 0 || res.stdout != want {
		t.Errorf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}
