package program_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/qaqueue/qaqueue/program"
)

// CheckValue accepts what pydantic's lax mode accepts for a model input
// (coercions, defaults, extra keys) and names the first problem by its
// path, what was expected there and what came.
func TestCheckValue(t *testing.T) {
	t.Parallel()
	sig := sourceSignature(t, "c.py", `import dspy
from typing import Optional, Union
from pydantic import BaseModel, Field

class Citation(BaseModel):
    source: str
    page: int = 1

class Report(BaseModel):
    title: str = Field(max_length=10)
    score: float = Field(0.5, ge=0, le=1)
    tags: list[str] = Field(default_factory=list, max_length=2)
    summary: str = Field(description="One paragraph")
    citations: list[Citation]
    extra: Optional[Citation] = None
    either: Union[Citation, int] = 0

class Sig(dspy.Signature):
    report: Report = dspy.InputField()
    answer: str = dspy.OutputField()
`, "Sig")
	report := sig.Inputs()[0].Type
	for _, tc := range []struct {
		in   string
		want string // "" when valid
	}{
		{`{"title": "t", "summary": "s", "citations": [{"source": "a", "page": "12"}], "unknown": 1}`, ""},
		{`{"title": "t", "summary": "s", "citations": [], "extra": null, "either": "3"}`, ""},
		{`{"title": "t", "summary": "s", "citations": [{"source": 3}]}`, "citations[0].source: expected str, got number"},
		{`{"title": "t", "citations": []}`, "summary: missing (expected str)"},
		{`{"title": "t", "summary": "s", "citations": [{"source": "a", "page": 1.5}]}`, "citations[0].page: expected int, got number"},
		{`{"title": "t", "summary": "s", "citations": {"source": "a"}}`, "citations: expected list[Citation], got object"},
		{`{"title": "t", "summary": "s", "citations": [], "extra": "x"}`, "extra: expected Citation, got string"},
		{`{"title": "t", "summary": "s", "citations": [], "either": []}`, "either: expected Union[Citation, int], got array"},
		{`{"title": "t", "summary": "s", "citations": [], "either": {"page": 2}}`, "either.source: missing (expected str)"},
		{`{"title": "t", "summary": "s", "citations": [], "score": 1.5}`, "score: expected float <= 1, got 1.5"},
		{`{"title": "a long title", "summary": "s", "citations": []}`, "title: expected str of at most 10 characters, got 12 characters"},
		{`{"title": "t", "summary": "s", "citations": [], "tags": ["a", "b", 3]}`, "tags: expected list[str] of at most 2 items, got 3 items"},
		{`"a report"`, "expected Report, got string"},
		{`null`, "expected Report, got null"},
	} {
		dec := json.NewDecoder(bytes.NewReader([]byte(tc.in)))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		err := report.CheckValue(v)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want valid", tc.in, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("%s: %v, want %q", tc.in, err, tc.want)
		}
		var ce *program.CheckError
		if tc.want != "" && !errors.As(err, &ce) {
			t.Errorf("%s: %T is not a *program.CheckError", tc.in, err)
		}
	}
}
