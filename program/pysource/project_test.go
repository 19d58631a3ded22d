package pysource

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/program"
)

// compact writes a field on one line: name: type, then what was given.
func compact(f Field) string {
	s := fmt.Sprintf("%d:%d %s: %s", f.Line, f.Col, f.Name, f.Type)
	if f.Desc != "" {
		s += fmt.Sprintf(" desc=%q", f.Desc)
	}
	if f.Prefix != "" {
		s += fmt.Sprintf(" prefix=%q", f.Prefix)
	}
	for _, c := range f.Constraints {
		s += fmt.Sprintf(" %s=%#v", c.Name, c.Value)
	}
	if f.HasDefault {
		s += fmt.Sprintf(" default=%#v", f.Default)
	}
	if f.DefaultFactory != "" {
		s += " default_factory=" + f.DefaultFactory
	}
	return s
}

func compactAll(fs []Field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = compact(f)
	}
	return out
}

// A realistic project file: a module docstring, imports in three forms,
// constants, helper functions, models with multi-line Field(...) calls,
// comments between fields, methods and properties, a docstring with blank
// lines and deeper indentation, implicit string concatenation, a field
// without annotation, a subclass, a decorated function, a dspy.Module and
// a __main__ block.
func TestReadProjectFile(t *testing.T) {
	t.Parallel()
	f := readFile(t, "claims_project.py")

	type classView struct {
		Name, Base, Doc string
		Line            int
		In, Out, Fields []string
	}
	var got []classView
	for _, m := range f.Models {
		got = append(got, classView{Name: m.Name, Base: m.Base, Doc: m.Docstring, Line: m.Line, Fields: compactAll(m.Fields)})
	}
	for _, s := range f.Signatures {
		got = append(got, classView{Name: s.Name, Base: s.Base, Doc: s.Instructions, Line: s.Line, In: compactAll(s.Inputs), Out: compactAll(s.Outputs)})
	}
	verifyIn := []string{
		`76:5 claims: list[str]`,
		`77:5 quote: str desc="The quote to check against"`,
	}
	verifyOut := []string{
		`78:5 supported: bool desc="True if every claim is supported by the quote"`,
		`79:5 confidence: float desc="between 0 and 1" prefix="Confidence:"`,
		`80:5 verdict: Union[Literal['supported', 'refuted'], NoneType]`,
		`81:5 notes: UnionType[str, NoneType] desc="Anything the reviewer should know; leave empty if nothing"`,
	}
	want := []classView{
		{Name: "Evidence", Doc: "A quote that supports or refutes a claim.", Line: 27, Fields: []string{
			`30:5 quote: str desc="Verbatim span from the transcript" min_length=1`,
			`35:5 start: int ge=0 default=0`,
			`36:5 speaker: Union[str, NoneType] default=<nil>`,
		}},
		{Name: "Claim", Line: 39, Fields: []string{
			`40:5 text: str desc="The claim, as one sentence"`,
			`42:5 confidence: float ge=0 le=1 default=0.5`,
			`43:5 evidence: list[Evidence] default_factory=list`,
			`44:5 tags: list[str] default=[]interface {}{}`,
			`45:5 kind: Literal['fact', 'opinion', 'prediction'] default="fact"`,
		}},
		{Name: "ClaimExtraction", Line: 55,
			Doc: "Extract the factual claims made in the transcript.\n\n    Only include claims that can be checked against public sources.\n" +
				"    Ignore greetings, filler and questions.\n\n        Quote the speaker exactly; do not paraphrase.\n    ",
			In: []string{
				`64:5 transcript: str desc="Full transcript text"`,
				`66:5 speakers: list[str] desc="Names of the people speaking, in order of appearance"`,
			},
			Out: []string{`70:5 claims: list[Claim] desc="The claims, most important first"`},
		},
		{Name: "VerifyClaims", Line: 73, Doc: "Judge each claim against the quote.", In: verifyIn, Out: verifyOut},
		{Name: "VerifyClaimsStrict", Base: "VerifyClaims", Line: 90,
			Doc: "Judge each claim against the quote. Be strict: partial support is refuted.",
			In:  append(append([]string(nil), verifyIn...), `93:5 strictness: Literal[1, 2, 3] desc="1 lenient .. 3 strict"`),
			Out: verifyOut,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("classes (-want +got):\n%s", diff)
	}

	extract, _ := f.Signature("ClaimExtraction")
	esig, err := extract.Signature()
	if err != nil {
		t.Fatalf("ClaimExtraction.Signature() error = %v", err)
	}
	claims, _ := esig.Output("claims")
	claim := claims.Type.Args[0].Model
	if claim == nil || claim.Name != "Claim" {
		t.Fatalf("claims' item model = %+v, want Claim", claim)
	}
	if c := claim.Fields[1]; c.Name != "confidence" || c.Default != 0.5 ||
		!cmp.Equal(c.Constraints, []program.Constraint{{Name: "ge", Value: 0.0}, {Name: "le", Value: 1.0}}) {
		t.Errorf("confidence = %+v, want default 0.5 within [0, 1]", c)
	}
	verify, _ := f.Signature("VerifyClaims")
	sig, err := verify.Signature()
	if err != nil {
		t.Fatal(err)
	}
	if got := sig.OutputNames(); !cmp.Equal(got, []string{"supported", "confidence", "verdict", "notes"}) {
		t.Errorf("outputs %v", got)
	}
	strict, _ := f.Signature("VerifyClaimsStrict")
	if sig, err = strict.Signature(); err != nil || len(sig.Inputs()) != 3 {
		t.Fatalf("VerifyClaimsStrict.Signature() = %v, %v", sig, err)
	}
}

// A subclass without a docstring takes its base's, and a base without one
// passes on the default instructions computed from the base's own fields,
// as DSPy's SignatureMeta does.
func TestReadInheritedInstructions(t *testing.T) {
	t.Parallel()
	src := `import dspy

class Base(dspy.Signature):
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()

class Child(Base):
    context: list[str] = dspy.InputField()

class Documented(dspy.Signature):
    """Answer briefly."""
    question = dspy.InputField()
    answer = dspy.OutputField()

class Grandchild(Documented):
    answer: int = dspy.OutputField(desc="a number")
`
	f, err := Read("inherit.py", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Base":       "Given the fields `question`, produce the fields `answer`.",
		"Child":      "Given the fields `question`, produce the fields `answer`.",
		"Documented": "Answer briefly.",
		"Grandchild": "Answer briefly.",
	}
	for name, instr := range want {
		cls, err := f.Signature(name)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := cls.Signature()
		if err != nil {
			t.Fatal(err)
		}
		if sig.Instructions() != instr {
			t.Errorf("%s instructions %q, want %q", name, sig.Instructions(), instr)
		}
	}
	g, _ := f.Signature("Grandchild")
	if got := compactAll(g.Outputs); !cmp.Equal(got, []string{`16:5 answer: int desc="a number"`}) {
		t.Errorf("Grandchild outputs %v: a redefined field keeps its place with the new type", got)
	}
	c, _ := f.Signature("Child")
	if got := compactAll(c.Inputs); !cmp.Equal(got, []string{`4:5 question: str`, `8:5 context: list[str]`}) {
		t.Errorf("Child inputs %v", got)
	}
}

// Imports under other names resolve; one-line methods, class constants,
// classes with other bases and functions with Python 3.12 f-strings (quotes
// reused inside replacement fields) are skipped.
func TestReadAliasesAndSkips(t *testing.T) {
	t.Parallel()
	src := `import typing as t
import dspy as d
from typing import List as L
from dspy.signatures.signature import Signature as Sig
from pydantic import (
    BaseModel as BM,
    Field as F,
)

class Item(BM):
    name: str = F(..., description="n")
    label_max: t.ClassVar[int] = 3
    def label(self): return self.name

class S(Sig):
    """Doc."""
    items: L["Item"] = d.InputField()
    maybe: t.Optional[t.List[str]] = d.InputField()
    def helper(self): return 1
    CONST = 3
    out: t.Union[int, None] = d.OutputField(desc='it' "em" r"\n")

class NotASig(SomethingElse):
    x: str = d.InputField()

def show(d, width):
    return f"{d["k"]} {d['j']!r:>{width}} {{literal}}" + f'''{"nested " + f"{d['x']}"}''' + f"{'"'}"
`
	f, err := Read("alias.py", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Models) != 1 || len(f.Signatures) != 1 {
		t.Fatalf("got %d models, %d signatures; want Item and S", len(f.Models), len(f.Signatures))
	}
	if got := compactAll(f.Models[0].Fields); !cmp.Equal(got, []string{`11:5 name: str desc="n"`}) {
		t.Errorf("Item fields %v", got)
	}
	s := f.Signatures[0]
	got := append(compactAll(s.Inputs), compactAll(s.Outputs)...)
	want := []string{
		`17:5 items: list[Item]`,
		`18:5 maybe: Union[list[str], NoneType]`,
		`21:5 out: Union[int, NoneType] desc="item\\n"`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("S fields (-want +got):\n%s", diff)
	}
}

// A string signature bound to a name at module level reads as a class
// would: DSPy's default instructions, or the ones given.
func TestReadStringSignature(t *testing.T) {
	t.Parallel()
	src := `import dspy
from dspy import Signature
Rewrite = dspy.Signature("question -> search_query")
Answer = Signature("question, context: list[str] -> answer, sufficient: bool", instructions="Answer from the context.")
other = some.call("x -> y")
registry = {"base": dspy.Signature}
`
	f, err := Read("strsig.py", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Rewrite": "Given the fields `question`, produce the fields `search_query`.",
		"Answer":  "Answer from the context.",
	}
	if len(f.Signatures) != len(want) {
		t.Fatalf("got %d signatures, want %d", len(f.Signatures), len(want))
	}
	for name, instr := range want {
		cls, err := f.Signature(name)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := cls.Signature()
		if err != nil {
			t.Fatal(err)
		}
		if sig.Instructions() != instr {
			t.Errorf("%s instructions %q, want %q", name, sig.Instructions(), instr)
		}
	}
	a, _ := f.Signature("Answer")
	if got := append(compactAll(a.Inputs), compactAll(a.Outputs)...); !cmp.Equal(got, []string{
		"4:10 question: str", "4:10 context: list[str]", "4:10 answer: str", "4:10 sufficient: bool"}) {
		t.Errorf("Answer fields %v", got)
	}
}
