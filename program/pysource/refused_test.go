package pysource

import (
	"errors"
	"testing"
)

// mixed is a project file where some classes cannot be served: the
// classes that can are read, and each of the others keeps its own error.
const mixed = `import dspy
from pydantic import BaseModel, Field


class Chart(BaseModel):
    points: list[float] = Field(pattern="^[0-9]")


class Pixel(BaseModel):
    x: int
    y: int
    @field_validator("x")
    def positive(cls, v):
        return v


class Describe(dspy.Signature):
    """Describe the image."""
    image: dspy.Image = dspy.InputField()
    pixels: list[Pixel] = dspy.OutputField()


class Answer(dspy.Signature):
    """Answer the question."""
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


class Plot(dspy.Signature):
    data: str = dspy.InputField()
    chart: Chart = dspy.OutputField()


class Caption(Describe):
    caption: str = dspy.OutputField()


Chat = dspy.Signature("question, history: dspy.History -> answer")
Short = dspy.Signature("question -> answer: int")
`

func TestReadKeepsErrorsWithTheirClass(t *testing.T) {
	t.Parallel()
	f, err := Read("sigs.py", []byte(mixed))
	if err != nil {
		t.Fatalf("Read: %v; want the file read, its unsupported classes refused one by one", err)
	}
	for _, name := range []string{"Answer", "Short"} {
		cls, err := f.Signature(name)
		if err != nil {
			t.Fatalf("Signature(%s): %v", name, err)
		}
		sig, err := cls.Signature()
		if err != nil {
			t.Fatalf("%s.Signature(): %v", name, err)
		}
		if n := len(sig.Inputs()) + len(sig.Outputs()); n != 2 {
			t.Errorf("%s has %d fields, want 2", name, n)
		}
	}
	if got := len(f.Signatures); got != 3 {
		t.Errorf("%d signatures read whole, want 3 (Answer, Plot, Short)", got)
	}

	image := `sigs.py:19:12: unsupported type dspy.Image (DSPy's special types such as Image, Audio, History and Tool are not served)`
	for name, want := range map[string]string{
		"Describe": image,
		"Caption":  image, // its base's error
		"Chat":     `sigs.py:38:8: Chat: parse signature "question, history: dspy.History -> answer": inputs: parse type "dspy.History": unsupported type "dspy.History" (DSPy's special types such as Image, Audio, History and Tool are not served)`,
	} {
		_, err := f.Signature(name)
		var perr *Error
		if !errors.As(err, &perr) || err.Error() != want {
			t.Errorf("Signature(%s): %v (%T)\nwant %s", name, err, err, want)
		}
	}

	// A model that cannot be served breaks only what uses it.
	_, err = f.Model("Pixel")
	if want := `sigs.py:12:6: class Pixel: @field_validator changes the model's values or schema and is not supported`; err == nil || err.Error() != want {
		t.Errorf("Model(Pixel): %v\nwant %s", err, want)
	}
	plot, err := f.Signature("Plot")
	if err != nil {
		t.Fatalf("Signature(Plot): %v; its model's constraint is refused when it is resolved", err)
	}
	_, err = plot.Signature()
	if want := `sigs.py:6:5: class Chart: field points: constraint pattern=: not yet supported`; err == nil || err.Error() != want || !errors.Is(err, ErrNotYetSupported) {
		t.Errorf("Plot.Signature(): %v\nwant %s", err, want)
	}

	// A name the file does not declare is not a refused class.
	for _, name := range []string{"Missing", "Chart"} {
		if _, err := f.Signature(name); !errors.Is(err, ErrNotDeclared) {
			t.Errorf("Signature(%s): %v, want ErrNotDeclared", name, err)
		}
	}
	if _, err := f.Model("Answer"); !errors.Is(err, ErrNotDeclared) {
		t.Errorf("Model(Answer): %v, want ErrNotDeclared", err)
	}
}

// A model whose fields are refused breaks a signature that uses it with
// the model's own error, when the signature is built.
func TestRefusedModelInASignature(t *testing.T) {
	t.Parallel()
	src := "import dspy\nfrom pydantic import BaseModel\n\nclass Item(BaseModel):\n    at: str = now()\n\n" +
		"class S(dspy.Signature):\n    q: str = dspy.InputField()\n    items: list[Item] = dspy.OutputField()\n"
	f, err := Read("m.py", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Signature("S")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Signature()
	if want := `m.py:5:15: field at: the default must be a literal or Field(...)`; err == nil || err.Error() != want {
		t.Errorf("S.Signature(): %v\nwant %s", err, want)
	}
}

// A name declared twice is refused whichever form each declaration takes,
// and the other signatures still serve.
func TestReadDeclaredTwice(t *testing.T) {
	t.Parallel()
	class := "class S(dspy.Signature):\n    a: str = dspy.InputField()\n    b: str = dspy.OutputField()\n"
	for name, src := range map[string]string{
		"class first":  "import dspy\n" + class + "S = dspy.Signature(\"a -> b\")\nOK = dspy.Signature(\"q -> r\")\n",
		"string first": "import dspy\nS = dspy.Signature(\"a -> b\")\n" + class + "OK = dspy.Signature(\"q -> r\")\n",
	} {
		f, err := Read("d.py", []byte(src))
		if err != nil {
			t.Fatalf("%s: Read: %v", name, err)
		}
		want := `d.py:5:1: S is declared twice; Python would keep only the last`
		if name == "string first" {
			want = `d.py:2:1: S is declared twice; Python would keep only the last`
		}
		if _, err := f.Signature("S"); err == nil || err.Error() != want {
			t.Errorf("%s: Signature(S): %v, want %s", name, err, want)
		}
		if len(f.Signatures) != 1 || f.Signatures[0].Name != "OK" {
			t.Errorf("%s: signatures read %d, want OK alone", name, len(f.Signatures))
		}
	}
}
