package program

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Expected values below are what CPython 3.12 returns.

func TestPySplitLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"a\n", []string{"a"}},
		{"a\n\nb", []string{"a", "", "b"}},
		{"a\r\nb\rc\vd\fe\x1cf\x1dg\x1eh\u0085i\u2028j\u2029k", []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}},
		{"a\x1fb", []string{"a\x1fb"}},
		{"\r\n\n", []string{"", ""}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, pySplitLines(tc.in)); diff != "" {
			t.Errorf("pySplitLines(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestPyStrip(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		" \t\n\v\f\r\x1c\x1d\x1e\x1f\u0085\u00a0\u2000\u3000 x y \u200b": "x y \u200b", // U+200B is not whitespace
		"":     "",
		"\xff": "\xff",
	}
	for in, want := range tests {
		if got := pyStrip(in); got != want {
			t.Errorf("pyStrip(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCleandocAndDedent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, cleandoc, dedented string
	}{
		{"docstring", "\n    Answer a question.\n\n    With care.\n    ", "Answer a question.\n\nWith care.", "Answer a question.\n\nWith care."},
		{"first line indent kept apart", "  First\n      second\n    third", "First\n  second\nthird", "First\n  second\nthird"},
		{"tabs expand", "x\n\ty\n\t\tz", "x\ny\n        z", "x\ny\n        z"},
		{"whitespace-only line", "A\n  B\n      \n  C", "A\nB\n    \nC", "A\nB\n\nC"},
		{"blank lines trimmed", "\n\n  a\n\n", "a", "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := cleandoc(tc.in)
			if c != tc.cleandoc {
				t.Errorf("cleandoc = %q, want %q", c, tc.cleandoc)
			}
			if d := dedent(c); d != tc.dedented {
				t.Errorf("dedent = %q, want %q", d, tc.dedented)
			}
		})
	}
	if got := dedent("    a\n      b\n\t c"); got != "    a\n      b\n\t c" {
		t.Errorf("dedent with mixed margins = %q", got)
	}
	if got := dedent("  a\n    b\n  c"); got != "a\n  b\nc" {
		t.Errorf("dedent = %q", got)
	}
}

func TestPyCaseRules(t *testing.T) {
	t.Parallel()
	caps := map[string]string{"hELLO": "Hello", "": "", "éA": "Éa", "2x": "2x", "ǆx": "ǅx"}
	for in, want := range caps {
		if got := pyCapitalize(in); got != want {
			t.Errorf("pyCapitalize(%q) = %q, want %q", in, got, want)
		}
	}
	upper := map[string]bool{"URL": true, "A1": true, "1": false, "": false, "Ab": false, "ÉÀ": true}
	for in, want := range upper {
		if got := pyIsUpper(in); got != want {
			t.Errorf("pyIsUpper(%q) = %v, want %v", in, got, want)
		}
	}
	titles := map[string]string{"key concepts": "Key Concepts", "text2number": "Text2Number", "don't": "Don'T"}
	for in, want := range titles {
		if got := pyTitle(in); got != want {
			t.Errorf("pyTitle(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFloatFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f           float64
		repr, orjsn string
	}{
		{1, "1.0", "1.0"},
		{0.7, "0.7", "0.7"},
		{math.Copysign(0, -1), "-0.0", "-0.0"},
		{1e16, "1e+16", "1e16"},
		{1e15, "1000000000000000.0", "1000000000000000.0"},
		{123456789012345678, "1.2345678901234568e+17", "1.2345678901234568e17"},
		{0.0001, "0.0001", "0.0001"},
		{0.00001, "1e-05", "0.00001"},
		{0.000001, "1e-06", "1e-6"},
		{1.5e-7, "1.5e-07", "1.5e-7"},
		{math.Inf(1), "inf", "null"},
	}
	for _, tc := range tests {
		if got := pyFloatRepr(tc.f); got != tc.repr {
			t.Errorf("pyFloatRepr(%v) = %q, want %q", tc.f, got, tc.repr)
		}
		if got := orjsonFloat(tc.f); got != tc.orjsn {
			t.Errorf("orjsonFloat(%v) = %q, want %q", tc.f, got, tc.orjsn)
		}
	}
}

func TestPyValueFormats(t *testing.T) {
	t.Parallel()
	m := NewMap()
	m.Set("b", 1.0)
	m.Set("a", []any{true, nil, "x'y", `q"`, "é"})
	if got, want := pyJSONDumps(m), `{"b": 1.0, "a": [true, null, "x'y", "q\"", "é"]}`; got != want {
		t.Errorf("pyJSONDumps = %s, want %s", got, want)
	}
	if got, want := pyRepr(m), `{'b': 1.0, 'a': [True, None, "x'y", 'q"', 'é']}`; got != want {
		t.Errorf("pyRepr = %s, want %s", got, want)
	}
	if got, want := pyJSONDumpsIndent(NewMap()), `{}`; got != want {
		t.Errorf("empty = %s", got)
	}
	if got, want := pyReprString("a\\b\n'\"\x00\u00a0"), `'a\\b\n\'"\x00\xa0'`; got != want {
		t.Errorf("pyReprString = %s, want %s", got, want)
	}
}

func TestFormatFieldValue(t *testing.T) {
	t.Parallel()
	list := mustParseType(t, "list[str]")
	tests := []struct {
		name string
		t    Type
		v    any
		want string
	}{
		{"str list empty", Type{}, []any{}, "N/A"},
		{"str list one", Type{}, []any{"a"}, "«a»"},
		{"str list many", Type{}, []any{"a", "b\nc"}, "[1] «a»\n[2] «««\n    b\n    c\n»»»"},
		{"typed list is JSON", list, []any{"a", "é"}, `["a", "é"]`},
		{"dict", Type{}, map[string]any{"k": 1}, `{"k": 1}`},
		{"float", Type{}, 3.0, "3.0"},
		{"bool", Type{}, true, "True"},
		{"none", Type{}, nil, "None"},
		{"int", Type{}, 3, "3"},
	}
	for _, tc := range tests {
		if got := formatFieldValue(tc.t, tc.v); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func mustParseType(t *testing.T, s string) Type {
	t.Helper()
	ty, err := ParseType(s)
	if err != nil {
		t.Fatal(err)
	}
	return ty
}

func TestTypeNamesAndNotes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		annotation, name, placeholder string
	}{
		{"str", "str", "{f}"},
		{"int", "int", "{f}        # note: the value you produce must be a single int value"},
		{"float", "float", "{f}        # note: the value you produce must be a single float value"},
		{"bool", "bool", "{f}        # note: the value you produce must be True or False"},
		{"list[str]", "list[str]", `{f}        # note: the value you produce must adhere to the JSON schema: {"type": "array", "items": {"type": "string"}}`},
		{"dict[str, int]", "dict[str, int]", `{f}        # note: the value you produce must adhere to the JSON schema: {"type": "object", "additionalProperties": {"type": "integer"}}`},
		{"Literal['a', \"b'c\", 1, True]", `Literal['a', "b'c", 1, True]`, "{f}        # note: the value you produce must exactly match (no extra characters) one of: a; b'c; 1; True"},
		{"Optional[str]", "Union[str, NoneType]", `{f}        # note: the value you produce must adhere to the JSON schema: {"anyOf": [{"type": "string"}, {"type": "null"}]}`},
		{"str | None", "UnionType[str, NoneType]", `{f}        # note: the value you produce must adhere to the JSON schema: {"anyOf": [{"type": "string"}, {"type": "null"}]}`},
		{"List[Literal['x', 'y']]", "list[Literal['x', 'y']]", `{f}        # note: the value you produce must adhere to the JSON schema: {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}}`},
		{"Literal['it\\'s \"q\"']", `Literal['it\'s "q"']`, `{f}        # note: the value you produce must exactly match (no extra characters) one of: it's "q"`},
	}
	for _, tc := range tests {
		ty := mustParseType(t, tc.annotation)
		if got := ty.String(); got != tc.name {
			t.Errorf("%s: name %q, want %q", tc.annotation, got, tc.name)
		}
		if got := placeholder(Field{Name: "f", Type: ty}, true); got != tc.placeholder {
			t.Errorf("%s: placeholder\n got %q\nwant %q", tc.annotation, got, tc.placeholder)
		}
		if got := placeholder(Field{Name: "f", Type: ty}, false); got != "{f}" {
			t.Errorf("%s: input placeholder %q", tc.annotation, got)
		}
	}
}

func TestParseSignature(t *testing.T) {
	t.Parallel()
	sig, err := ParseSignature("question, context: list[str] -> answer, citations: list[str], sufficient: bool", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sig.Instructions(), "Given the fields `question`, `context`, produce the fields `answer`, `citations`, `sufficient`."; got != want {
		t.Errorf("instructions = %q, want %q", got, want)
	}
	cot, err := NewChainOfThought(sig)
	if err != nil {
		t.Fatal(err)
	}
	if got := cot.Signature().Instructions(); got != sig.Instructions() {
		t.Errorf("chain of thought changed the default instructions: %q", got)
	}
	if got := cot.Signature().OutputNames(); !cmp.Equal(got, []string{"reasoning", "answer", "citations", "sufficient"}) {
		t.Errorf("outputs = %q", got)
	}
	for _, bad := range []string{"a -> b -> c", "a", "a -> a", "a: Foo -> b", "1a -> b", "a -> "} {
		if _, err := ParseSignature(bad, ""); err == nil {
			t.Errorf("ParseSignature(%q) succeeded", bad)
		}
	}
}

func TestParseValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		annotation, text string
		want             any
		wantErr          bool
	}{
		{"int", "3", int64(3), false},
		{"int", " 4 ", int64(4), false},
		{"int", "3.0", int64(3), false},
		{"int", "three", nil, true},
		{"float", "2", 2.0, false},
		{"bool", "True", true, false},
		{"bool", "false", false, false},
		{"bool", "yes", true, false},
		{"list[str]", `["a", "b"]`, []any{"a", "b"}, false},
		{"list[str]", "['a', 'b']", []any{"a", "b"}, false},
		{"list[str]", "```json\n[\"a\",]\n```", []any{"a"}, false},
		{"list[int]", "[1, 'x']", nil, true},
		{"Literal['factual', 'opinion']", " 'opinion' ", "opinion", false},
		{"Literal['factual', 'opinion']", "Literal[factual]", "factual", false},
		{"Literal['factual', 'opinion']", "other", nil, true},
		{"Optional[str]", "text", "text", false},
		{"Optional[int]", "null", nil, false},
		{"dict[str, int]", "{'a': 1}", func() any { m := NewMap(); m.Set("a", int64(1)); return m }(), false},
	}
	for _, tc := range tests {
		got, err := parseValue(tc.text, mustParseType(t, tc.annotation))
		if (err != nil) != tc.wantErr {
			t.Errorf("parseValue(%q, %s) error = %v", tc.text, tc.annotation, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(Map{})); diff != "" {
			t.Errorf("parseValue(%q, %s) (-want +got):\n%s", tc.text, tc.annotation, diff)
		}
	}
}

// A type a string signature cannot hold is refused with what is supported
// instead: DSPy's special types in pysource's words, else the list.
func TestParseSignatureUnsupportedType(t *testing.T) {
	t.Parallel()
	for spec, want := range map[string]string{
		"question, history: dspy.History -> answer": `parse signature "question, history: dspy.History -> answer": inputs: parse type "dspy.History": ` +
			`unsupported type "dspy.History" (DSPy's special types such as Image, Audio, History and Tool are not served)`,
		"question -> answer: list[dspy.Image]": `parse signature "question -> answer: list[dspy.Image]": outputs: parse type "list[dspy.Image]": ` +
			`unsupported type "dspy.Image" (DSPy's special types such as Image, Audio, History and Tool are not served)`,
		"q -> a: lst[str]": `parse signature "q -> a: lst[str]": outputs: parse type "lst[str]": unsupported type "lst" ` +
			`(supported types: str, int, float, bool, list[...], dict[...], tuple[...], set[...], frozenset[...], Literal[...], Optional[...], Union[...], X | None, Any)`,
	} {
		_, err := ParseSignature(spec, "")
		if err == nil || err.Error() != want {
			t.Errorf("ParseSignature(%q): %v\nwant %s", spec, err, want)
		}
	}
}
