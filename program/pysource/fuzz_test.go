package pysource

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRead: Read never panics, fails only with an *Error, and whatever it
// reads converts (or refuses with an *Error) without panicking.
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
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Read("fuzz.py", src)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			return
		}
		for _, s := range file.Signatures {
			if _, err := s.Signature(); err != nil {
				var perr *Error
				if !errors.As(err, &perr) && !strings.HasPrefix(err.Error(), "build signature") {
					t.Fatalf("Signature() error %T %v", err, err)
				}
			}
		}
	})
}
