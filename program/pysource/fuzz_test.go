package pysource

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/program"
)

// FuzzRead: Read never panics, fails only with an *Error, keeps an *Error
// for each class it refuses, and whatever it reads converts (or refuses
// with an *Error) without panicking.
func FuzzRead(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.py")
	for _, p := range seeds {
		src, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add([]byte(sigHead + "    x: " + strings.Repeat("list[", 70) + "str" + strings.Repeat("]", 70) + " = dspy.InputField()\n"))
	f.Add([]byte(sigHead + "    x: \"list['list[\\\"Optional[int]\\\"]']\" = dspy.InputField()\n"))
	f.Add([]byte("class M(BaseModel):\n\tx: int = 1\n        y: str\n"))
	f.Add([]byte(sigHead + "    x: str = dspy.InputField(desc='\\x4'  '\\u12' \"\\777\")\n"))
	f.Add([]byte("import dspy\nfrom pydantic import BaseModel, Field\n\nclass C(BaseModel):\n    \"\"\"A c.\"\"\"\n    p: int = 1\n\nclass R(BaseModel):\n    c: C = Field(description='A c.')\n    cs: list[C]\n    o: 'C | None' = None\n\n" +
		"class S(dspy.Signature):\n    q: R = dspy.InputField()\n    r: list[R] = dspy.OutputField()\n    d: dict[str, C] = dspy.OutputField()\n"))
	f.Add([]byte(mixed))
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Read("fuzz.py", src)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			return
		}
		// A refused class keeps an *Error, and no class read whole is
		// also refused.
		for name, rf := range file.refused {
			var perr *Error
			if !errors.As(rf.err, &perr) {
				t.Fatalf("class %s refused with %T %v", name, rf.err, rf.err)
			}
		}
		for _, s := range file.Signatures {
			if got, err := file.Signature(s.Name); got != s || err != nil {
				t.Fatalf("Signature(%s) = %v, %v; want the class read", s.Name, got, err)
			}
			sig, err := s.Signature()
			if err != nil {
				var perr *Error
				if !errors.As(err, &perr) && !strings.HasPrefix(err.Error(), "build signature") {
					t.Fatalf("Signature() error %T %v", err, err)
				}
				continue
			}
			// Its models render (pydantic schemas) and parse.
			for _, a := range []program.Adapter{program.ChatAdapter{}, program.JSONAdapter{}} {
				a.Format(sig, nil, map[string]any{})
				_, _ = a.Parse(sig, "{}")
			}
		}
	})
}
