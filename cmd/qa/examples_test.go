package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
)

// examplesDir is the repository's examples: programs a DSPy user brings,
// each a program file with its source and saved state.
const examplesDir = "../../examples"

// exampleFiles are every program file under examples/ (one per folder).
func exampleFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*/*.yaml", "real-states/*/*.yaml"} {
		m, err := filepath.Glob(filepath.Join(examplesDir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found %d program files under %s, want claims and the four real states: %q", len(files), examplesDir, files)
	}
	return files
}

// savedDemos counts each predictor's demos in a saved state, read as JSON
// and not through program, so the count is the file's.
func savedDemos(t *testing.T, state []byte) map[string]int {
	t.Helper()
	var preds map[string]json.RawMessage
	if err := json.Unmarshal(state, &preds); err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for key, raw := range preds {
		if key == "metadata" {
			continue
		}
		var p struct {
			Demos []json.RawMessage `json:"demos"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		n[key] = len(p.Demos)
	}
	return n
}

// Every example compiles as a folder of PROGRAMS_DIR would: its name is its
// file's, every predictor of its state is a stage of it and each stage
// carries the state's demos.
func TestExamplesCompile(t *testing.T) {
	t.Parallel()
	for _, file := range exampleFiles(t) {
		t.Run(strings.TrimPrefix(file, examplesDir+"/"), func(t *testing.T) {
			t.Parallel()
			b, c := compileFile(t, file)
			if want := strings.TrimSuffix(filepath.Base(file), ".yaml"); c.Built.Name != want {
				t.Errorf("program name %q, want the file's %q", c.Built.Name, want)
			}
			if b.State == nil {
				t.Fatal("the example has no saved state")
			}
			demos := savedDemos(t, b.State)
			if len(demos) != len(c.Built.Stages) {
				t.Errorf("state has %d predictors, program %d stages", len(demos), len(c.Built.Stages))
			}
			for _, st := range c.Built.Stages {
				want, ok := demos[st.Key]
				if !ok {
					t.Errorf("stage %q is not a predictor of the state", st.Key)
					continue
				}
				if got := len(stagePredict(t, c, st.Key).Demos()); got != want {
					t.Errorf("stage %q has %d demos, the state %d", st.Key, got, want)
				}
			}
		})
	}
}

// claimsFile is the multi-stage typed example.
var claimsFile = filepath.Join(examplesDir, "claims", "claims.yaml")

// The claims example's dataflow is the one its README and program.py
// describe: article and transcript in, verify's quote bound to transcript,
// claims flowing from extract to verify.
func TestExampleClaimsDataflow(t *testing.T) {
	t.Parallel()
	_, c := compileFile(t, claimsFile)
	var inputs []string
	for _, f := range c.Built.Inputs {
		inputs = append(inputs, f.Name)
	}
	if got := strings.Join(inputs, ","); got != "article,transcript" {
		t.Errorf("program inputs %s, want article,transcript", got)
	}
	var outputs []string
	for _, o := range c.Built.Outputs {
		outputs = append(outputs, o.Stage+"."+o.Name+":"+o.Field.Type.String())
	}
	want := "extract.predict.claims:list[str],extract.predict.topic:Literal['economy', 'health', 'science', 'politics', 'other'],verify.supported:bool,verify.confidence:float"
	if got := strings.Join(outputs, ","); got != want {
		t.Errorf("program outputs\n %s\nwant\n %s", got, want)
	}
	verify := c.Built.Stages[1]
	var binds []string
	for _, bd := range verify.Inputs {
		binds = append(binds, bd.Field+"<-"+bd.Stage+":"+bd.From)
	}
	if got := strings.Join(binds, ","); got != "claims<-extract.predict:claims,quote<-:transcript" {
		t.Errorf("verify's inputs %s", got)
	}
}

// qa prompt renders each claims stage with the saved state: its optimized
// instructions (not the class docstring), its demos, the typed fields'
// hints; qa parse turns each stage's completion into typed JSON values.
func TestExampleClaimsPromptAndParse(t *testing.T) {
	t.Parallel()
	article := `{"article": "The city planted 12,000 trees last year, the mayor said, twice as many as in 2023."}`
	res := runQA(t, "", "prompt", "--program", claimsFile, "--stage", "extract.predict", "--inputs", article)
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	msgs := decodeMessages(t, res.stdout)
	if len(msgs) != 6 {
		t.Fatalf("%d messages, want system, two demos (user and assistant each) and the question", len(msgs))
	}
	for _, want := range []string{
		"Read the article and list every factual claim it makes", // the state's instructions
		"`claims` (list[str]): one checkable claim per item",
		"`topic` (Literal['economy', 'health', 'science', 'politics', 'other'])",
	} {
		if !strings.Contains(msgs[0].Content, want) {
			t.Errorf("system message lacks %q:\n%s", want, msgs[0].Content)
		}
	}
	if strings.Contains(msgs[0].Content, "each as one short") {
		t.Errorf("system message has the class docstring, not the state's instructions")
	}
	// The labeled demo lacks reasoning: DSPy puts incomplete demos first.
	if !strings.HasPrefix(msgs[1].Content, "This is an example of the task, though some input or output fields are not supplied.") ||
		!strings.Contains(msgs[2].Content, `["The trial enrolled 1,200 patients.", "The drug cut hospital stays by two days on average."]`) {
		t.Errorf("first demo is not the incomplete one:\n%s\n%s", msgs[1].Content, msgs[2].Content)
	}
	if strings.Contains(res.stdout, "just over a thousand") {
		t.Errorf("a demo's extra key (transcript) was rendered")
	}
	if !strings.Contains(msgs[4].Content, "[[ ## claims ## ]]\n[\"Unemployment fell to 3.9% in March.\"") {
		t.Errorf("the bootstrapped demo's claims are not a JSON list:\n%s", msgs[4].Content)
	}
	if !strings.Contains(msgs[5].Content, "The city planted 12,000 trees") {
		t.Errorf("last message lacks the input:\n%s", msgs[5].Content)
	}

	verifyIn := `{"claims": ["The city planted 12,000 trees last year."], "quote": "We planted twelve thousand trees in 2025."}`
	res = runQA(t, "", "prompt", "--program", claimsFile, "--stage", "verify", "--inputs", verifyIn)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	msgs = decodeMessages(t, res.stdout)
	if len(msgs) != 4 || !strings.Contains(msgs[2].Content, "[[ ## supported ## ]]\nTrue\n\n[[ ## confidence ## ]]\n0.9\n") ||
		!strings.Contains(msgs[3].Content, "[[ ## claims ## ]]\n[\"The city planted 12,000 trees last year.\"]") {
		t.Errorf("verify messages lack the demo or the list input:\n%s", res.stdout)
	}

	tests := []struct {
		stage, adapter, completion string
		check                      func(map[string]any) bool
	}{
		{"extract.predict", "chat", "[[ ## reasoning ## ]]\nOne figure, one comparison.\n\n[[ ## claims ## ]]\n" +
			"[\"The city planted 12,000 trees last year.\", \"That is twice as many as in 2023.\"]\n\n[[ ## topic ## ]]\nother\n\n[[ ## completed ## ]]\n",
			func(out map[string]any) bool {
				claims, ok := out["claims"].([]any)
				return ok && len(claims) == 2 && claims[1] == "That is twice as many as in 2023." && out["topic"] == "other"
			}},
		{"verify", "chat", "[[ ## supported ## ]]\nFalse\n\n[[ ## confidence ## ]]\n0.35\n\n[[ ## completed ## ]]\n",
			func(out map[string]any) bool { return out["supported"] == false && out["confidence"] == 0.35 }},
		{"verify", "json", `{"supported": true, "confidence": 1}`,
			func(out map[string]any) bool { return out["supported"] == true && out["confidence"] == 1.0 }},
	}
	for _, tc := range tests {
		res := runQA(t, tc.completion, "parse", "--program", claimsFile, "--stage", tc.stage, "--adapter", tc.adapter)
		if res.code != 0 {
			t.Errorf("%s %s: exit %d: %s", tc.stage, tc.adapter, res.code, res.stderr)
			continue
		}
		var out map[string]any
		if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || !tc.check(out) {
			t.Errorf("%s %s: parsed to (%v)\n%s", tc.stage, tc.adapter, err, res.stdout)
		}
	}

	// A value of the wrong type fails with DSPy's error naming the field.
	res = runQA(t, "[[ ## supported ## ]]\nTrue\n\n[[ ## confidence ## ]]\nhigh\n\n[[ ## completed ## ]]\n",
		"parse", "--program", claimsFile, "--stage", "verify")
	if res.code != 1 || res.stdout != "" || !strings.Contains(res.stderr, "confidence") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and an error naming confidence", res.code, res.stdout, res.stderr)
	}
}

func decodeMessages(t *testing.T, stdout string) []message {
	t.Helper()
	var msgs []message
	if err := json.Unmarshal([]byte(stdout), &msgs); err != nil {
		t.Fatalf("output is not a JSON list of messages: %v\n%s", err, stdout)
	}
	return msgs
}

// The four real states of shared/dspy/real-states (copied into
// examples/real-states with the signatures their projects declare) render
// through qa prompt --program with their optimized instructions and demos,
// as DSPy 3.3.1 would render them: incomplete demos first, a list in a str
// field as DSPy's numbered list, extra demo keys left out.
func TestExampleRealStatesPrompt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stage, inputs string
		// want are texts the messages hold; absent must not appear.
		want   []string
		absent []string
		// warned names the dependency versions that differ from 3.3.1's.
		warned []string
	}{
		{name: "gsm8k", inputs: `{"question": "A pen costs $2. How much do 7 pens cost?"}`,
			want: []string{
				"You are an AI system performing mission-critical calculations",
				"This is an example of the task, though some input or output fields are not supplied.\n\n[[ ## question ## ]]\nNancy bought a pie",
				"Betty took a two-hour break",
				"Difference = 40 (Dora's cupcakes) - 30 (Betty's cupcakes) = 10.",
			},
			absent: []string{"<<1/2*8=4>>"}, // gold_reasoning, a key the signature lacks
			warned: []string{"python", "dspy"}},
		{name: "gst-rag", stage: "rewrite.predict", inputs: `{"question": "Can I claim ITC on a company car?"}`,
			want: []string{
				"Rewrite a user question into a search query using Indian GST statutory\n        vocabulary",
				"Your output fields are:\n1. `reasoning` (str): \n2. `search_query` (str):",
				"[[ ## question ## ]]\nCan I claim ITC on a company car?",
			}},
		{name: "gst-rag", stage: "answer.predict", inputs: `{"question": "Can I claim ITC on a company car?", "context": "[1] Section 17(5): blocked credits ..."}`,
			want: []string{
				"`context` (str): numbered excerpts with chapter and section",
				"`citations` (list[str]): chunk_ids actually used",
				"`sufficient` (bool): whether the context answered the question",
				"set sufficient to False and say so rather than inferring.",
			}},
		{name: "maruti-rag", inputs: `{"context": "Kharkhoda Phase-I began in March 2025.", "question": "When did Kharkhoda begin?"}`,
			want: []string{
				"about Maruti Suzuki's financial data or product launches",
				"[[ ## question ## ]]\nWhat share did SUVs account for in the Indian PV industry in FY’25?",
				"[[ ## context ## ]]\n[1] «Manesar to add ~100k capacity by March 2024.»\n[2] «Kharkhoda",
				"[[ ## response ## ]]\n~100,000 units.",
			},
			warned: []string{"dspy"}},
		{name: "pii-clean", inputs: `{"text": "Hei, jeg heter Rune og pakken kom aldri."}`,
			want: []string{
				"1. `text` (str): The text to clean",
				"2. `clean_text` (str): The cleaned text",
				"Retain mentions of recognized logistics companies",
				"Mobilnummeret mitt stod på esken!",
			},
			absent: []string{"Remove PII and inappropriate content from text."}, // the docstring, replaced by the state
			warned: []string{"dspy"}},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+tc.stage, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(examplesDir, "real-states", tc.name, tc.name+".yaml")
			res := runQA(t, "", "prompt", "--program", file, "--stage", tc.stage, "--inputs", tc.inputs)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			var text strings.Builder
			for _, m := range decodeMessages(t, res.stdout) {
				text.WriteString(m.Content + "\n")
			}
			for _, w := range tc.want {
				if !strings.Contains(text.String(), w) {
					t.Errorf("messages lack %q", w)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(text.String(), a) {
					t.Errorf("messages hold %q", a)
				}
			}
			var warned []string
			for _, line := range strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n") {
				if k, ok := strings.CutPrefix(line, "warning: There is a mismatch of "); ok {
					warned = append(warned, strings.Fields(k)[0])
				} else if line != "" {
					t.Errorf("stderr line %q", line)
				}
			}
			if strings.Join(warned, ",") != strings.Join(tc.warned, ",") {
				t.Errorf("version warnings for %q, want %q", warned, tc.warned)
			}
		})
	}
}

// fakeLM starts the project's fake LM and a real LM client talking to it.
func fakeLM(t *testing.T) (*fakelm.Server, *lmclient.Client) {
	t.Helper()
	srv, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	lm, err := lmclient.New(lmclient.Config{Model: "openai/gpt-4o-mini", APIBase: srv.URL()}, lmclient.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	return srv, lm
}

// runStages runs c's stages in order against lm, each stage's inputs taken
// from the program's inputs or earlier stages' outputs as the file binds
// them, and returns each stage's outputs. It is the chain the worker runs
// behind the API (issue 15, item 4), without the queue.
func runStages(t *testing.T, lm program.LM, c *programfile.Compiled, in map[string]any) map[string]*program.Map {
	t.Helper()
	outs := map[string]*program.Map{}
	for _, st := range c.Built.Stages {
		inputs := map[string]any{}
		for _, bd := range st.Inputs {
			if bd.Stage == "" {
				inputs[bd.Field] = in[bd.From]
				continue
			}
			inputs[bd.Field], _ = outs[bd.Stage].Get(bd.From)
		}
		one, err := program.NewProgram(program.NamedPredict{Key: st.Key, Predict: stagePredict(t, c, st.Key)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := one.Run(context.Background(), lm, inputs, &program.RunOptions{NoCache: true})
		if err != nil {
			t.Fatalf("stage %s: %v", st.Key, err)
		}
		outs[st.Key] = res.Outputs
	}
	return outs
}

// Every example runs against the fake LM: each stage's answer parses into
// every output its signature declares.
func TestExamplesAgainstFakeLM(t *testing.T) {
	t.Parallel()
	_, lm := fakeLM(t)
	for _, file := range exampleFiles(t) {
		t.Run(strings.TrimPrefix(file, examplesDir+"/"), func(t *testing.T) {
			t.Parallel()
			_, c := compileFile(t, file)
			in := map[string]any{}
			for _, f := range c.Built.Inputs {
				switch f.Type.String() {
				case "str":
					in[f.Name] = "Some text for " + f.Name + "."
				case "list[str]":
					in[f.Name] = []any{"One " + f.Name + ".", "Another."}
				default:
					t.Fatalf("input %s: no sample value for type %s", f.Name, f.Type)
				}
			}
			outs := runStages(t, lm, c, in)
			for _, st := range c.Built.Stages {
				for _, f := range stagePredict(t, c, st.Key).Signature().Outputs() {
					if v, ok := outs[st.Key].Get(f.Name); !ok || v == nil {
						t.Errorf("stage %s: output %s is %#v", st.Key, f.Name, v)
					}
				}
			}
		})
	}
}

// The claims example runs against the fake LM, stage by stage as its
// program file says: each stage's prompt goes through the real LM client,
// its completion parses into values of the declared types, and verify's
// claims are extract's.
func TestExampleClaimsAgainstFakeLM(t *testing.T) {
	t.Parallel()
	srv, lm := fakeLM(t)
	_, c := compileFile(t, claimsFile)
	in := map[string]any{
		"article":    "The city planted 12,000 trees last year, the mayor said, twice as many as in 2023.",
		"transcript": "We planted twelve thousand trees in 2025.",
	}
	outs := runStages(t, lm, c, in)
	get := func(stage, field string) any {
		v, ok := outs[stage].Get(field)
		if !ok {
			t.Fatalf("stage %s has no output %s", stage, field)
		}
		return v
	}
	claims, ok := get("extract.predict", "claims").([]any)
	if !ok || len(claims) == 0 {
		t.Fatalf("claims %#v, want a non-empty list", get("extract.predict", "claims"))
	}
	for _, cl := range claims {
		if _, ok := cl.(string); !ok {
			t.Errorf("claim %#v is not a string", cl)
		}
	}
	if topic := get("extract.predict", "topic"); !slices.Contains([]any{"economy", "health", "science", "politics", "other"}, topic) {
		t.Errorf("topic %#v is not one of the Literal's values", topic)
	}
	if _, ok := get("verify", "supported").(bool); !ok {
		t.Errorf("supported %#v is not a bool", get("verify", "supported"))
	}
	if _, ok := get("verify", "confidence").(float64); !ok {
		t.Errorf("confidence %#v is not a float", get("verify", "confidence"))
	}
	// The last request is verify's: extract's claims and the transcript as
	// its quote, in the messages DSPy's ChatAdapter formats for them.
	var last struct {
		Messages []message `json:"messages"`
	}
	if err := json.Unmarshal(srv.LastRequest(), &last); err != nil {
		t.Fatal(err)
	}
	verify := stagePredict(t, c, "verify")
	want := program.ChatAdapter{}.Format(verify.Signature(), verify.Demos(), map[string]any{"claims": claims, "quote": in["transcript"]})
	if len(last.Messages) != len(want) {
		t.Fatalf("verify sent %d messages, want %d", len(last.Messages), len(want))
	}
	for i, m := range want {
		if last.Messages[i] != (message{Role: m.Role, Content: m.Content}) {
			t.Errorf("verify's message %d:\n %q\nwant\n %q", i, last.Messages[i], m)
		}
	}
}

// docs/programs.md shows claims.yaml: the program file it shows is the
// example's, comments aside.
func TestExampleClaimsInDocs(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/programs.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	shown, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatal("docs/programs.md has no ```yaml block")
	}
	file, err := os.ReadFile(claimsFile)
	if err != nil {
		t.Fatal(err)
	}
	canonical := func(yaml []byte) string {
		f, err := programfile.Parse(yaml)
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		return string(c)
	}
	if got, want := canonical([]byte(shown)), canonical(file); got != want {
		t.Errorf("docs/programs.md shows\n%s\nclaims.yaml is\n%s", got, want)
	}
}
