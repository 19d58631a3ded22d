package pysource

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/program"
)

// sigView is what a program.Signature holds, comparable with cmp.
type sigView struct {
	Instructions    string
	Inputs, Outputs []fieldView
}

type fieldView struct{ Name, Type, Desc, Prefix string }

func view(s *program.Signature) sigView {
	fields := func(fs []program.Field) []fieldView {
		out := make([]fieldView, len(fs))
		for i, f := range fs {
			out[i] = fieldView{f.Name, f.Type.String(), f.Desc, f.Prefix}
		}
		return out
	}
	return sigView{s.Instructions(), fields(s.Inputs()), fields(s.Outputs())}
}

func readFile(t *testing.T, name string) *File {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(name, src)
	if err != nil {
		t.Fatalf("Read(%s): %v", name, err)
	}
	return f
}

// The seed's QA class (SPEC §2.7 and the README's program.py) reads as it
// is and gives the built-in QA program's signature and prompt.
func TestReadQASignatureMatchesBuiltIn(t *testing.T) {
	t.Parallel()
	builtin := program.NewQA().Predictor().Predict
	for _, name := range []string{"qa_spec.py", "readme_qa.py"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := readFile(t, name)
			if len(f.Signatures) != 1 || len(f.Models) != 0 {
				t.Fatalf("got %d signatures, %d models; want the QA class only", len(f.Signatures), len(f.Models))
			}
			sig, err := f.Signatures[0].Signature()
			if err != nil {
				t.Fatal(err)
			}
			cot, err := program.NewChainOfThought(sig)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(view(builtin.Signature()), view(cot.Signature())); diff != "" {
				t.Errorf("signature differs from program.NewQA()'s (-builtin +read):\n%s", diff)
			}
			inputs := map[string]any{"question": "Why is the sky blue?"}
			want := program.ChatAdapter{}.Format(builtin.Signature(), nil, inputs)
			got := program.ChatAdapter{}.Format(cot.Signature(), nil, inputs)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("chat messages differ (-builtin +read):\n%s", diff)
			}
		})
	}
}

type vectorField struct {
	Name       string `json:"name"`
	Annotation string `json:"annotation"`
	Desc       string `json:"desc"`
	Prefix     string `json:"prefix"`
}

type typedVector struct {
	ID                 string `json:"id"`
	SignatureName      string `json:"signature_name"`
	SignatureSource    string `json:"signature_source"`
	EffectiveSignature *struct {
		Instructions string        `json:"instructions"`
		Inputs       []vectorField `json:"input_fields"`
		Outputs      []vectorField `json:"output_fields"`
	} `json:"effective_signature"`
	OutputAnnotations []vectorField `json:"output_annotations"`
}

// Every signature_source of DSPy's typed vectors reads, and each class
// gives the instructions, fields, annotations, descs and prefixes DSPy
// 3.3.1 built from it.
func TestReadTypedVectors(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/typed_signatures.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Vectors []typedVector }
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) < 14 {
		t.Fatalf("only %d vectors", len(file.Vectors))
	}
	for _, v := range file.Vectors {
		t.Run(v.ID, func(t *testing.T) {
			t.Parallel()
			f, err := Read(v.SignatureName+".py", []byte(v.SignatureSource))
			if err != nil {
				t.Fatal(err)
			}
			cls, err := f.Signature(v.SignatureName)
			if err != nil {
				t.Fatal(err)
			}
			if v.EffectiveSignature == nil {
				got := make([]vectorField, len(cls.Outputs))
				for i, o := range cls.Outputs {
					got[i] = vectorField{Name: o.Name, Annotation: o.Type.String()}
				}
				if diff := cmp.Diff(v.OutputAnnotations, got); diff != "" {
					t.Errorf("outputs (-dspy +read):\n%s", diff)
				}
				return
			}
			want := sigView{Instructions: v.EffectiveSignature.Instructions}
			for _, g := range []struct {
				from []vectorField
				to   *[]fieldView
			}{{v.EffectiveSignature.Inputs, &want.Inputs}, {v.EffectiveSignature.Outputs, &want.Outputs}} {
				for _, vf := range g.from {
					*g.to = append(*g.to, fieldView{vf.Name, vf.Annotation, vf.Desc, vf.Prefix})
				}
			}
			sig, err := cls.Signature()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, view(sig)); diff != "" {
				t.Errorf("signature (-dspy +read):\n%s", diff)
			}
		})
	}
}

// Windows line endings and tab indentation read the same.
func TestReadLineEndingsAndTabs(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("testdata/qa_spec.py")
	if err != nil {
		t.Fatal(err)
	}
	want, err := Read("qa_spec.py", src)
	if err != nil {
		t.Fatal(err)
	}
	for name, variant := range map[string]string{
		"crlf": strings.ReplaceAll(string(src), "\n", "\r\n"),
		"tabs": strings.ReplaceAll(string(src), "    ", "\t"),
	} {
		got, err := Read("qa_spec.py", []byte(variant))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		gs, err := got.Signatures[0].Signature()
		if err != nil {
			t.Fatal(err)
		}
		ws, _ := want.Signatures[0].Signature()
		if diff := cmp.Diff(view(ws), view(gs)); diff != "" {
			t.Errorf("%s (-lf +variant):\n%s", name, diff)
		}
	}
}

// WriteReport's models read with their fields, descriptions and nesting.
func TestReadVectorModels(t *testing.T) {
	t.Parallel()
	src := `from pydantic import BaseModel, Field
import dspy

class Citation(BaseModel):
    source: str
    page: int


class Report(BaseModel):
    title: str
    summary: str = Field(description="One-paragraph summary of the findings")
    citations: list[Citation]


class WriteReport(dspy.Signature):
    """Write a short report on the topic, citing sources."""

    topic: str = dspy.InputField()
    report: Report = dspy.OutputField()
`
	f, err := Read("report.py", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []*ModelClass{
		{Name: "Citation", Line: 4, Fields: []Field{
			{Name: "source", Line: 5, Col: 5, Type: program.Type{Name: "str"}},
			{Name: "page", Line: 6, Col: 5, Type: program.Type{Name: "int"}},
		}},
		{Name: "Report", Line: 9, Fields: []Field{
			{Name: "title", Line: 10, Col: 5, Type: program.Type{Name: "str"}},
			{Name: "summary", Line: 11, Col: 5, Type: program.Type{Name: "str"}, Desc: "One-paragraph summary of the findings"},
			{Name: "citations", Line: 12, Col: 5, Type: program.Type{Name: "list", Args: []program.Type{{Name: "Citation"}}}},
		}},
	}
	if diff := cmp.Diff(want, f.Models); diff != "" {
		t.Errorf("models (-want +got):\n%s", diff)
	}
	sig, err := f.Signatures[0].Signature()
	if err != nil {
		t.Fatal(err)
	}
	// The signature's field names the model, and the model carries its
	// fields, the nested one resolved too.
	out, _ := sig.Output("report")
	report := out.Type.Model
	if report == nil || report.Name != "Report" || len(report.Fields) != 3 {
		t.Fatalf("report's model = %+v, want Report with 3 fields", report)
	}
	if d := report.Fields[1].Desc; d != "One-paragraph summary of the findings" {
		t.Errorf("summary's description = %q", d)
	}
	citation := report.Fields[2].Type.Args[0].Model
	if citation == nil || citation.Name != "Citation" || citation.Fields[1].Type.Name != "int" {
		t.Errorf("citations' item model = %+v, want Citation", citation)
	}
}

// A module of dspy.Module classes with string signatures declares no
// signature classes and reads without error.
func TestReadModulesOnly(t *testing.T) {
	t.Parallel()
	f := readFile(t, "multi_stage_program.py")
	if len(f.Signatures) != 0 || len(f.Models) != 0 {
		t.Fatalf("got %+v %+v, want nothing", f.Signatures, f.Models)
	}
}
