package programfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// claimsYAML is the example file.
const claimsYAML = `name: claims                  # ^[a-z][a-z0-9-]{0,62}$
description: Extract claims, then judge them against the quote
source: signatures.py
state: optimized.json
stages:
  - key: extract.predict
    module: ChainOfThought
    signature: ClaimExtraction
  - key: verify
    module: Predict
    signature: "claims: list[str], quote -> supported: bool, confidence: float"
    inputs: {quote: input.transcript}
outputs: [claims, supported, confidence]
`

// stage1 is a minimal valid file whose first stage the cases below edit.
const stage1 = "name: a\nstages:\n  - key: s\n    module: Predict\n    signature: q -> a\n"

func TestParseClaims(t *testing.T) {
	t.Parallel()
	f, err := Parse([]byte(claimsYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := &File{
		Name:        "claims",
		Description: "Extract claims, then judge them against the quote",
		Source:      "signatures.py",
		State:       "optimized.json",
		Stages: []FileStage{
			{Key: "extract.predict", Module: ModuleChainOfThought, Signature: "ClaimExtraction"},
			{Key: "verify", Module: ModulePredict, Signature: "claims: list[str], quote -> supported: bool, confidence: float",
				Inputs: map[string]string{"quote": "input.transcript"}},
		},
		Outputs: []string{"claims", "supported", "confidence"},
	}
	if diff := cmp.Diff(want, f, cmpFile); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

var cmpFile = cmp.Comparer(func(a, b *File) bool {
	ca, errA := a.Canonical()
	cb, errB := b.Canonical()
	return errA == nil && errB == nil && string(ca) == string(cb)
})

// TestCanonical pins the canonical form and shows that comments, key
// order, quoting and flow or block style do not change it.
func TestCanonical(t *testing.T) {
	t.Parallel()
	same := `# the same file, written differently
outputs:
  - claims
  - supported
  - "confidence"
stages:
  - signature: 'ClaimExtraction'
    module: ChainOfThought
    key: extract.predict
  - {key: verify, module: Predict, signature: "claims: list[str], quote -> supported: bool, confidence: float",
     inputs: {quote: "input.transcript"}}
state: optimized.json
source: signatures.py
description: >-
  Extract claims, then judge them
  against the quote
name: "claims"
`
	want := `{"name":"claims","description":"Extract claims, then judge them against the quote","source":"signatures.py","state":"optimized.json",` +
		`"stages":[{"key":"extract.predict","module":"ChainOfThought","signature":"ClaimExtraction"},` +
		`{"key":"verify","module":"Predict","signature":"claims: list[str], quote -> supported: bool, confidence: float","inputs":{"quote":"input.transcript"}}],` +
		`"outputs":["claims","supported","confidence"]}`
	for _, src := range []string{claimsYAML, same} {
		f, err := Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("Canonical:\n got %s\nwant %s", got, want)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		check      func(*File) string
	}{
		{"dotted and indexed keys", "name: a\nsource: s.py\nstages:\n  - key: steps[0].predict\n    module: Predict\n    signature: Q\n",
			func(f *File) string { return f.Stages[0].Key }},
		{"nested relative paths", "name: a-1\nsource: sigs/s.py\nstate: states/v2/o.json\nstages:\n  - {key: s, module: Predict, signature: Q}\n",
			func(f *File) string { return f.Source + " " + f.State }},
		{"63-character name", "name: a" + strings.Repeat("b", 62) + "\nstages:\n  - {key: s, module: Predict, signature: q -> a}\n",
			func(f *File) string { return f.Name }},
	}
	want := []string{"steps[0].predict", "sigs/s.py states/v2/o.json", "a" + strings.Repeat("b", 62)}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.check(f); got != want[i] {
				t.Errorf("got %q, want %q", got, want[i])
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	edit := func(old, new string) string { return strings.Replace(stage1, old, new, 1) }
	tests := []struct{ name, yaml, want string }{
		// The file as a whole.
		{"empty", "", "the file is empty"},
		{"only a comment", "# nothing\n", "the file is empty"},
		{"too big", "name: a\ndescription: " + strings.Repeat("x", MaxYAMLBytes) + "\n",
			"the file is 262166 bytes, over the limit of 262144 (MaxYAMLBytes, 256 KiB)"}, // 8 + 13 + 256 KiB + 1
		{"syntax", "name: [a\n", "read YAML: line 1: did not find expected ',' or ']'"},
		{"two documents", stage1 + "---\nname: b\n", "6:1: a second YAML document; a program file is one document"},
		{"not a mapping", "- name: a\n", "1:1: must be a mapping, not a list"},
		{"null document", "---\n", "2:1: must be a mapping, not null"},
		// Anchors, aliases, tags, depth.
		{"anchor", "name: &n a\n", "1:7: name: anchors (&n) are not allowed"},
		{"alias", "description: &d x\nname: *d\n", "1:14: description: anchors (&d) are not allowed"},
		{"alias alone", "name: a\nstages: *s\n", "read YAML: unknown anchor 's' referenced"},
		{"standard tag", "name: !!str a\n", "1:7: name: tags (!!str) are not allowed"},
		{"custom tag", edit("signature: q -> a", "signature: !py q -> a"), "5:16: stages[0].signature: tags (!py) are not allowed"},
		{"tag on a mapping", "name: a\nstages:\n  - !stage {key: s}\n", "3:5: stages[0]: tags (!stage) are not allowed"},
		{"merge key", "<<: {name: a}\n", `1:1: "<<": merge keys (<<) are not allowed`},
		{"too deep", edit("signature: q -> a", "signature: q -> a\n    inputs: {q: [x]}"),
			"6:18: stages[0].inputs.q[0]: nested deeper than a program file goes (5 levels)"},
		{"deep under an unknown key", "x: [[[[[[a]]]]]]\n", "1:8: x[0][0][0][0]: nested deeper than a program file goes (5 levels)"},
		// Keys.
		{"unknown key", stage1 + "version: 2\n", "6:1: version: unknown key (name, description, source, state, stages, outputs)"},
		{"repeated key", "name: a\nname: b\n", "2:1: name: repeated key (first at 1:1)"},
		{"number key", "1: a\n", "1:1: keys must be strings, not a number (1)"},
		{"unknown stage key", edit("module: Predict", "module: Predict\n    prompt: x"), "5:5: stages[0].prompt: unknown key (key, module, signature, inputs)"},
		{"repeated stage key", edit("module: Predict", "module: Predict\n    module: Predict"), "5:5: stages[0].module: repeated key (first at 4:5)"},
		// name.
		{"no stages", "name: a\nstages: []\n", "2:9: stages: must list at least one stage"},
		{"name missing", "stages:\n  - {key: s, module: Predict, signature: q -> a}\n", "1:1: name: required"},
		{"name upper case", edit("name: a", "name: Claims"), `1:7: name: "Claims" does not match ^[a-z][a-z0-9-]{0,62}$`},
		{"name too long", edit("name: a", "name: a"+strings.Repeat("b", 63)), `1:7: name: "a` + strings.Repeat("b", 63) + `" does not match ^[a-z][a-z0-9-]{0,62}$`},
		{"name starts with a digit", edit("name: a", "name: 1a"), `1:7: name: "1a" does not match ^[a-z][a-z0-9-]{0,62}$`},
		{"name a number", edit("name: a", "name: 12"), "1:7: name: must be a string, not a number (12)"},
		{"name null", edit("name: a", "name:"), "1:6: name: must be a string, not null"},
		{"description a list", stage1 + "description: [a]\n", "6:14: description: must be a string, not a list"},
		// source and state.
		{"absolute source", stage1 + "source: /etc/passwd\n", `6:9: source: "/etc/passwd" is absolute; paths are relative to the program file's folder`},
		{"drive letter", stage1 + "state: 'C:x.json'\n", `6:8: state: "C:x.json" is absolute; paths are relative to the program file's folder`},
		{"dot dot", stage1 + "source: ../s.py\n", `6:9: source: "../s.py" leaves the program file's folder (..)`},
		{"dot dot inside", stage1 + "state: a/../../s.json\n", `6:8: state: "a/../../s.json" leaves the program file's folder (..)`},
		{"dot dot alone", stage1 + "state: ..\n", `6:8: state: ".." leaves the program file's folder (..)`},
		{"backslash", stage1 + "source: 'a\\s.py'\n", `6:9: source: "a\\s.py" has a backslash; separate folders with /`},
		{"dot slash", stage1 + "source: ./s.py\n", `6:9: source: "./s.py" is not a clean relative path (like dir/file.py)`},
		{"double slash", stage1 + "source: a//s.py\n", `6:9: source: "a//s.py" is not a clean relative path (like dir/file.py)`},
		{"empty source", stage1 + "source: ''\n", "6:9: source: must not be empty (leave the key out)"},
		// stages.
		{"stages missing", "name: a\n", "1:1: stages: required"},
		{"stages a mapping", "name: a\nstages: {key: s}\n", "2:9: stages: must be a list, not a mapping"},
		{"stage a string", "name: a\nstages: [s]\n", "2:10: stages[0]: must be a mapping, not a string"},
		{"stage key missing", "name: a\nstages:\n  - {module: Predict, signature: q -> a}\n", "3:5: stages[0].key: required"},
		{"stage key empty", edit("key: s", "key: ''"), "3:10: stages[0].key: must not be empty"},
		{"stage key input", edit("key: s", "key: input"), `3:10: stages[0].key: "input" is reserved for bindings to program inputs (input.X)`},
		{"stage key with a space", edit("key: s", "key: a b"), `3:10: stages[0].key: "a b" has a character other than printable ASCII without spaces`},
		{"stage key too long", edit("key: s", "key: "+strings.Repeat("k", 129)), "3:10: stages[0].key: is 129 bytes, over 128"},
		{"stage key repeated", stage1 + "  - {key: s, module: Predict, signature: a -> b}\n", `6:11: stages[1].key: "s" is the key of an earlier stage too (3:10)`},
		{"module missing", "name: a\nstages:\n  - {key: s, signature: q -> a}\n", "3:5: stages[0].module: required (Predict, ChainOfThought)"},
		{"module not supported", stage1 + "  - key: t\n    module: ReAct\n    signature: a -> b\n",
			`7:13: stages[1].module: "ReAct" is not supported yet: a stage runs Predict or ChainOfThought; ReAct calls tools, which qaqueue does not run`},
		{"module lower case", edit("module: Predict", "module: predict"),
			`4:13: stages[0].module: "predict" is not a module: names are case-sensitive, as in Python; did you mean "Predict"?`},
		{"module refine", edit("module: Predict", "module: Refine"),
			`4:13: stages[0].module: "Refine" is not supported yet: a stage runs Predict or ChainOfThought; Refine reruns a module under a reward function, Python code qaqueue does not run (serve the module it wraps as the stage)`},
		{"module dotted", edit("module: Predict", "module: dspy.ChainOfThought"),
			`4:13: stages[0].module: "dspy.ChainOfThought" is not a module: write the class name without dspy., as in "ChainOfThought"`},
		{"module unknown", edit("module: Predict", "module: Summarizer"),
			`4:13: stages[0].module: "Summarizer" is not supported: a stage runs Predict or ChainOfThought (a dspy.Module of your own is a chain of such stages: list them)`},
		{"signature missing", "name: a\nstages:\n  - {key: s, module: Predict}\n", "3:5: stages[0].signature: required"},
		{"signature neither", edit("signature: q -> a", "signature: Claim Extraction"),
			`5:16: stages[0].signature: "Claim Extraction" is neither a class name nor a string signature ("inputs -> outputs")`},
		{"class without source", edit("signature: q -> a", "signature: QA"), `5:16: stages[0].signature: "QA" names a class, but the file has no source`},
		// inputs and outputs.
		{"inputs a list", edit("signature: q -> a", "signature: q -> a\n    inputs: [q]"), "6:13: stages[0].inputs: must be a mapping, not a list"},
		{"binding field not a name", edit("signature: q -> a", "signature: q -> a\n    inputs: {'1q': input.q}"), `6:14: stages[0].inputs."1q": "1q" is not a field name`},
		{"binding without a dot", edit("signature: q -> a", "signature: q -> a\n    inputs: {q: transcript}"),
			`6:17: stages[0].inputs.q: "transcript" is not a binding (input.FIELD or STAGE_KEY.FIELD)`},
		{"binding ending in a dot", edit("signature: q -> a", "signature: q -> a\n    inputs: {q: s.}"),
			`6:17: stages[0].inputs.q: "s." is not a binding (input.FIELD or STAGE_KEY.FIELD)`},
		{"binding a number", edit("signature: q -> a", "signature: q -> a\n    inputs: {q: 1.5}"), "6:17: stages[0].inputs.q: must be a string, not a number (1.5)"},
		{"outputs a string", stage1 + "outputs: a\n", "6:10: outputs: must be a list, not a string"},
		{"outputs empty", stage1 + "outputs: []\n", "6:10: outputs: must list at least one output (leave the key out for every stage's outputs)"},
		{"output not a name", stage1 + "outputs: [a b]\n", `6:11: outputs[0]: "a b" is neither a field name nor STAGE_KEY.FIELD`},
		{"output twice", stage1 + "outputs: [a, a]\n", `6:14: outputs[1]: "a" is listed twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", f)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}
