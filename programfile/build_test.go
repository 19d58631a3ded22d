package programfile

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/program"
)

// classes resolves class names from string signatures, standing in for
// the Python source reader (a later step); its errors are the reader's.
func classes(specs map[string]string) Resolver {
	return func(class string) (*program.Signature, error) {
		spec, ok := specs[class]
		if !ok {
			return nil, fmt.Errorf("class %s not found in the source", class)
		}
		return program.ParseSignature(spec, "")
	}
}

var claimsClasses = classes(map[string]string{"ClaimExtraction": "transcript -> claims: list[str]"})

func build(t *testing.T, src string, resolve Resolver) *Program {
	t.Helper()
	f, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Build(resolve)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// flow is a Program's dataflow in a comparable form: each stage's
// bindings as "field<-stage.from" (program inputs as input.from), the
// program's inputs as "name: type" and its outputs as "name<-stage.field".
type flow struct {
	Stages  map[string][]string
	Inputs  []string
	Outputs []string
}

func flowOf(p *Program) flow {
	fl := flow{Stages: map[string][]string{}}
	for _, s := range p.Stages {
		for _, b := range s.Inputs {
			src := b.Stage
			if src == "" {
				src = "input"
			}
			fl.Stages[s.Key] = append(fl.Stages[s.Key], b.Field+"<-"+src+"."+b.From)
		}
	}
	for _, in := range p.Inputs {
		fl.Inputs = append(fl.Inputs, in.Name+": "+in.Type.String())
	}
	for _, o := range p.Outputs {
		fl.Outputs = append(fl.Outputs, o.Name+"<-"+o.Stage+"."+o.Field.Name)
	}
	return fl
}

// TestBuildClaims is the example: verify's claims come from
// extract, its quote is bound to the program input transcript, and the
// listed outputs come from the stage producing each.
func TestBuildClaims(t *testing.T) {
	t.Parallel()
	p := build(t, claimsYAML, claimsClasses)
	want := flow{
		Stages: map[string][]string{
			"extract.predict": {"transcript<-input.transcript"},
			"verify":          {"claims<-extract.predict.claims", "quote<-input.transcript"},
		},
		Inputs:  []string{"transcript: str"},
		Outputs: []string{"claims<-extract.predict.claims", "supported<-verify.supported", "confidence<-verify.confidence"},
	}
	if diff := cmp.Diff(want, flowOf(p)); diff != "" {
		t.Errorf("dataflow (-want +got):\n%s", diff)
	}
	if got := p.Stages[0].Predict.Signature().OutputNames(); !reflect.DeepEqual(got, []string{"reasoning", "claims"}) {
		t.Errorf("ChainOfThought outputs = %v, want reasoning first", got)
	}
	if got := p.Stages[1].Predict.Signature().OutputNames(); !reflect.DeepEqual(got, []string{"supported", "confidence"}) {
		t.Errorf("Predict outputs = %v, want the signature's", got)
	}
	if got, want := p.Outputs[1].Field.Type.String(), "bool"; got != want {
		t.Errorf("supported is %s, want %s", got, want)
	}
	if p.Name != "claims" || p.Description != "Extract claims, then judge them against the quote" || p.File == nil {
		t.Errorf("name, description, file = %q, %q, %v", p.Name, p.Description, p.File)
	}
}

// TestBuildQA: the built-in file builds the predictor program.NewQA
// builds, under the same key, with the same saved-state bytes.
func TestBuildQA(t *testing.T) {
	t.Parallel()
	p, err := QA()
	if err != nil {
		t.Fatal(err)
	}
	got, err := program.NewProgram(p.Predictors()...)
	if err != nil {
		t.Fatal(err)
	}
	want := program.NewQA()
	if got.Predictor().Key != want.Predictor().Key {
		t.Errorf("key %q, want %q", got.Predictor().Key, want.Predictor().Key)
	}
	if !reflect.DeepEqual(got.Predictor().Predict.Signature(), want.Predictor().Predict.Signature()) {
		t.Errorf("signature differs:\n got %+v\nwant %+v", got.Predictor().Predict.Signature().Fields(), want.Predictor().Predict.Signature().Fields())
	}
	if got.Provenance() != want.Provenance() {
		t.Errorf("saved state differs: provenance %s, want %s", got.Provenance(), want.Provenance())
	}
	wantFlow := flow{
		Stages:  map[string][]string{"predict.predict": {"question<-input.question"}},
		Inputs:  []string{"question: str"},
		Outputs: []string{"reasoning<-predict.predict.reasoning", "answer<-predict.predict.answer", "key_concepts<-predict.predict.key_concepts", "question_type<-predict.predict.question_type"},
	}
	if diff := cmp.Diff(wantFlow, flowOf(p)); diff != "" {
		t.Errorf("dataflow (-want +got):\n%s", diff)
	}
	if p.Name != "qa" {
		t.Errorf("name %q, want qa", p.Name)
	}
}

func TestBuildRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       flow
	}{
		{"latest earlier output wins over an earlier one and over the program input",
			"name: a\nstages:\n" +
				"  - {key: one, module: Predict, signature: 'x -> x2, y'}\n" +
				"  - {key: two, module: Predict, signature: 'x2 -> y'}\n" +
				"  - {key: three, module: Predict, signature: 'x, y -> z'}\n" +
				"outputs: [z]\n",
			flow{
				Stages:  map[string][]string{"one": {"x<-input.x"}, "two": {"x2<-one.x2"}, "three": {"x<-input.x", "y<-two.y"}},
				Inputs:  []string{"x: str"},
				Outputs: []string{"z<-three.z"},
			}},
		{"an input a later stage produces is a program input; inputs in first-use order",
			"name: a\nstages:\n" +
				"  - {key: one, module: Predict, signature: 'b: int, a -> c'}\n" +
				"  - {key: two, module: Predict, signature: 'd: list[str], c, a -> b'}\n" +
				"  - {key: three, module: Predict, signature: 'b -> e'}\n",
			flow{
				Stages:  map[string][]string{"one": {"b<-input.b", "a<-input.a"}, "two": {"d<-input.d", "c<-one.c", "a<-input.a"}, "three": {"b<-two.b"}},
				Inputs:  []string{"b: int", "a: str", "d: list[str]"},
				Outputs: []string{"c<-one.c", "b<-two.b", "e<-three.e"},
			}},
		{"explicit bindings: a program input under another name, an earlier stage that is not the latest, a dotted key, reasoning",
			"name: a\nstages:\n" +
				"  - {key: x.predict, module: ChainOfThought, signature: 'q -> a'}\n" +
				"  - {key: y, module: Predict, signature: 'q -> a'}\n" +
				"  - key: z\n    module: Predict\n    signature: 'a, why, text -> v'\n" +
				"    inputs: {a: x.predict.a, why: x.predict.reasoning, text: input.q}\n" +
				"outputs: [y.a, v]\n",
			flow{
				Stages:  map[string][]string{"x.predict": {"q<-input.q"}, "y": {"q<-input.q"}, "z": {"a<-x.predict.a", "why<-x.predict.reasoning", "text<-input.q"}},
				Inputs:  []string{"q: str"},
				Outputs: []string{"a<-y.a", "v<-z.v"},
			}},
		{"default outputs: every stage's, ChainOfThought's reasoning first",
			"name: a\nstages:\n" +
				"  - {key: s, module: ChainOfThought, signature: 'q -> a: int, b'}\n" +
				"  - {key: t, module: Predict, signature: 'a: int -> ok: bool'}\n",
			flow{
				Stages:  map[string][]string{"s": {"q<-input.q"}, "t": {"a<-s.a"}},
				Inputs:  []string{"q: str"},
				Outputs: []string{"reasoning<-s.reasoning", "a<-s.a", "b<-s.b", "ok<-t.ok"},
			}},
		{"two ChainOfThought stages list their reasoning by stage",
			"name: a\nstages:\n" +
				"  - {key: s, module: ChainOfThought, signature: 'q -> a'}\n" +
				"  - {key: t, module: ChainOfThought, signature: 'a -> b'}\n" +
				"outputs: [t.reasoning, a, b]\n",
			flow{
				Stages:  map[string][]string{"s": {"q<-input.q"}, "t": {"a<-s.a"}},
				Inputs:  []string{"q: str"},
				Outputs: []string{"reasoning<-t.reasoning", "a<-s.a", "b<-t.b"},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, flowOf(build(t, tc.yaml, nil))); diff != "" {
				t.Errorf("dataflow (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	two := func(sig1, sig2, extra string) string {
		return "name: a\nsource: s.py\nstages:\n" +
			"  - key: x.p\n    module: ChainOfThought\n    signature: " + sig1 + "\n" +
			"  - key: y\n    module: ChainOfThought\n    signature: " + sig2 + "\n" + extra
	}
	bound := func(binding string) string {
		return two("'q -> a'", "'a -> b'", "    inputs: {a: "+binding+"}\noutputs: [b]\n")
	}
	resolve := classes(map[string]string{"Q": "q -> a", "Bad": "q -> reasoning"})
	tests := []struct {
		name, yaml string
		resolve    Resolver
		want       string
	}{
		{"string signature", two("'q -> '", "'a -> b'", ""), nil,
			`6:16: stages[0].signature: parse signature "q -> ": no output fields`},
		{"string signature type", two("'q -> a: lst[str]'", "'a -> b'", ""), nil,
			`6:16: stages[0].signature: parse signature "q -> a: lst[str]": outputs: parse type "lst[str]": unsupported type "lst" ` +
				`(supported types: str, int, float, bool, list[...], dict[...], tuple[...], set[...], frozenset[...], Literal[...], Optional[...], Union[...], X | None, Any)`},
		{"class without a resolver", two("Q", "'a -> b'", ""), nil,
			"6:16: stages[0].signature: class Q: no source reader to resolve it"},
		{"class the resolver lacks", two("Q", "Missing", ""), resolve,
			"9:16: stages[1].signature: class Missing not found in the source"},
		{"ChainOfThought over a reasoning output", two("Bad", "'a -> b'", ""), resolve,
			`6:16: stages[0].signature: ChainOfThought over this signature: new chain of thought: prepend field: "reasoning" already exists`},
		{"binding to an unknown stage", bound("z.a"), nil,
			`10:17: stages[1].inputs.a: "z.a": no stage has the key "z"`},
		{"binding to a key's prefix", bound("x.a"), nil,
			`10:17: stages[1].inputs.a: "x.a": no stage has the key "x"`},
		{"binding to itself", bound("y.reasoning"), nil,
			`10:17: stages[1].inputs.a: "y.reasoning": a stage cannot take its own output`},
		{"binding to a later stage",
			"name: a\nstages:\n  - key: s\n    module: Predict\n    signature: q -> a\n    inputs: {q: t.b}\n  - {key: t, module: Predict, signature: a -> b}\n", nil,
			`6:17: stages[0].inputs.q: "t.b": stage "t" runs later (stages[1])`},
		{"binding to a missing field", bound("x.p.c"), nil,
			`10:17: stages[1].inputs.a: "x.p.c": stage "x.p" has no output "c" (its outputs: reasoning, a)`},
		{"binding to an input of the stage", bound("x.p.q"), nil,
			`10:17: stages[1].inputs.a: "x.p.q": stage "x.p" has no output "q" (its outputs: reasoning, a)`},
		{"binding a field the stage lacks", two("'q -> a'", "'a -> b'", "    inputs: {c: input.q}\noutputs: [b]\n"), nil,
			`10:14: stages[1].inputs.c: stage "y" has no input "c" (its inputs: a)`},
		{"program input with two types", two("'q: int -> a'", "'q: str -> b'", "outputs: [b]\n"), nil,
			`9:16: stages[1].signature: program input "q" is str here but int in an earlier stage`},
		{"default outputs produced twice", two("'q -> a'", "'a -> b'", ""), nil,
			`7:5: outputs: "reasoning" is an output of stages "x.p" and "y": list the program's outputs, naming it as x.p.reasoning or y.reasoning`},
		{"listed output produced twice", two("'q -> a'", "'a -> b'", "outputs: [reasoning]\n"), nil,
			`10:11: outputs[0]: "reasoning" is an output of stages "x.p" and "y": list it as x.p.reasoning or y.reasoning`},
		{"listed output nobody produces", two("'q -> a'", "'a -> b'", "outputs: [q]\n"), nil,
			`10:11: outputs[0]: "q": no stage has this output`},
		{"listed output of an unknown stage", two("'q -> a'", "'a -> b'", "outputs: [z.b]\n"), nil,
			`10:11: outputs[0]: "z.b": no stage has the key "z"`},
		{"listed output the stage lacks", two("'q -> a'", "'a -> b'", "outputs: [x.p.b]\n"), nil,
			`10:11: outputs[0]: "x.p.b": stage "x.p" has no output "b" (its outputs: reasoning, a)`},
		{"two outputs with one name", two("'q -> a'", "'a -> b'", "outputs: [x.p.reasoning, y.reasoning]\n"), nil,
			`10:26: outputs[1]: "y.reasoning" is also the output "x.p.reasoning": a result has one value per name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			p, err := f.Build(tc.resolve)
			if err == nil {
				t.Fatalf("Build accepted it: %+v", flowOf(p))
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

// TestBuildResolverError: a resolver's error is kept for errors.Is.
func TestBuildResolverError(t *testing.T) {
	t.Parallel()
	sentinel := errors.New("source line 3: unsupported annotation")
	f, err := Parse([]byte("name: a\nsource: s.py\nstages:\n  - {key: s, module: Predict, signature: Q}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Build(func(string) (*program.Signature, error) { return nil, sentinel })
	if !errors.Is(err, sentinel) || !strings.HasPrefix(err.Error(), "4:42: stages[0].signature: ") {
		t.Errorf("error %v: want %v at 4:42", err, sentinel)
	}
}
