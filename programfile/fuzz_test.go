package programfile

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/qaqueue/qaqueue/program"
)

// FuzzParse checks that any input is refused with an *Error or parsed
// into a file whose canonical form (JSON, which is YAML) parses back to
// itself, and that building never panics and yields a coherent dataflow:
// every binding names an earlier stage's output or a program input.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		claimsYAML, stage1, string(qaFile), billionLaughs("lols"),
		"name: a\nstages:\n  - {key: a.b.c, module: ChainOfThought, signature: 'x: list[int] -> y: dict[str, int]', inputs: {x: input.z}}\n  - {key: d, module: Predict, signature: 'y -> w: Literal[\"a\", \"b\"]'}\noutputs: [a.b.c.reasoning, w]\n",
		"name: a\nstages: [[[[[x]]]]]\n", "name: !!str a\n", "{name: a, stages: [{key: s, module: Predict, signature: q -> a}]}",
	} {
		f.Add([]byte(seed))
	}
	resolve := func(class string) (*program.Signature, error) {
		return program.ParseSignature("question, context: list[str] -> answer, "+class+": bool", "")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			return
		}
		canon, err := file.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if len(canon) <= MaxYAMLBytes {
			again, err := Parse(canon)
			if err != nil {
				t.Fatalf("canonical form %s does not parse: %v", canon, err)
			}
			if canon2, _ := again.Canonical(); !bytes.Equal(canon, canon2) {
				t.Fatalf("canonical form changed on a round trip:\n%s\n%s", canon, canon2)
			}
		}
		p, err := file.Build(resolve)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			return
		}
		checkFlow(t, p)
	})
}

// checkFlow checks the invariants of a built program's dataflow.
func checkFlow(t *testing.T, p *Program) {
	t.Helper()
	inputs := map[string]bool{}
	for _, in := range p.Inputs {
		inputs[in.Name] = true
	}
	for i, s := range p.Stages {
		if len(s.Inputs) != len(s.Signature.Inputs()) {
			t.Fatalf("stage %q binds %d of %d inputs", s.Key, len(s.Inputs), len(s.Signature.Inputs()))
		}
		for _, b := range s.Inputs {
			if b.Stage == "" {
				if !inputs[b.From] {
					t.Fatalf("stage %q takes %q from a program input the program lacks", s.Key, b.From)
				}
				continue
			}
			j := slices.IndexFunc(p.Stages, func(e Stage) bool { return e.Key == b.Stage })
			if j < 0 || j >= i {
				t.Fatalf("stage %q takes %q from stage %q, not an earlier one", s.Key, b.Field, b.Stage)
			}
			if _, ok := p.Stages[j].Predict.Signature().Output(b.From); !ok {
				t.Fatalf("stage %q takes %q from %q, which lacks it", s.Key, b.From, b.Stage)
			}
		}
	}
	if len(p.Outputs) == 0 {
		t.Fatal("no outputs")
	}
	names := map[string]bool{}
	for _, o := range p.Outputs {
		if names[o.Name] {
			t.Fatalf("output %q twice", o.Name)
		}
		names[o.Name] = true
	}
}
