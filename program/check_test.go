package program

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// decodeInputs reads inputs as the API does: numbers kept as written.
func decodeCheckInputs(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCheckInputs(t *testing.T) {
	t.Parallel()
	field := func(name, typ string) Field {
		ty, err := ParseType(typ)
		if err != nil {
			t.Fatal(err)
		}
		return Field{Name: name, Type: ty}
	}
	for _, tc := range []struct {
		typ, value string
		want       string // "" accepted; else the error
	}{
		{"str", `"x"`, ""},
		{"str", `["a"]`, "inputs.v: expected str, got an array"},
		{"int", `3`, ""},
		{"int", `-12345678901234567890123`, ""},
		{"int", `3.5`, "inputs.v: expected int, got a number (3.5)"},
		{"int", `"3"`, "inputs.v: expected int, got a string"},
		{"float", `3`, ""},
		{"float", `3.5e2`, ""},
		{"float", `true`, "inputs.v: expected float, got a boolean"},
		{"bool", `false`, ""},
		{"bool", `0`, "inputs.v: expected bool, got a number (0)"},
		{"list[str]", `["a", "b"]`, ""},
		{"list[str]", `"a"`, "inputs.v: expected list[str], got a string"},
		{"list[str]", `["a", 2]`, "inputs.v[1]: expected str, got a number (2)"},
		{"list[int]", `[]`, ""},
		{"dict[str, float]", `{"a": 1, "b": 2.5}`, ""},
		{"dict[str, float]", `{"a": "x"}`, `inputs.v.a: expected float, got a string`},
		{"dict[str, float]", `[1]`, "inputs.v: expected dict[str, float], got an array"},
		{"dict", `{"a": [1, {"b": null}]}`, ""},
		{"tuple[int, str]", `[1, "a"]`, ""},
		{"tuple[int, str]", `[1]`, "inputs.v: expected tuple[int, str], got an array of 1 item"},
		{"tuple[int, str]", `["a", "a"]`, "inputs.v[0]: expected int, got a string"},
		{"tuple[int, ...]", `[1, 2, 3]`, ""},
		{"Literal['a', 'b']", `"b"`, ""},
		{"Literal['a', 'b']", `"c"`, `inputs.v: expected Literal['a', 'b'], got a string ("c")`},
		{"Literal[1, True]", `1`, ""},
		{"Literal[1, True]", `true`, ""},
		{"Literal[1, True]", `1.0`, "inputs.v: expected Literal[1, True], got a number (1.0)"},
		{"Optional[int]", `null`, ""},
		{"Optional[int]", `4`, ""},
		{"Optional[int]", `"4"`, "inputs.v: expected Union[int, NoneType], got a string"},
		{"int | None", `null`, ""},
		{"Union[int, list[str]]", `["a"]`, ""},
		{"Union[int, list[str]]", `[1]`, "inputs.v: expected Union[int, list[str]], got an array"},
		{"str", `null`, "inputs.v: expected str, got null"},
		{"Any", `{"x": 1}`, ""},
	} {
		sig, err := NewSignature("", []Field{field("v", tc.typ)}, []Field{{Name: "out"}})
		if err != nil {
			t.Fatal(err)
		}
		err = sig.CheckInputs(decodeCheckInputs(t, `{"v": `+tc.value+`}`))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %s: %v", tc.typ, tc.value, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("%s %s:\n got %v\nwant %s", tc.typ, tc.value, err, tc.want)
		case tc.want != "":
			var ie *InputError
			if !errors.As(err, &ie) || !strings.HasPrefix(ie.Field, "inputs.v") || ie.Expected == "" || ie.Got == "" {
				t.Errorf("%s %s: %#v is not a full *InputError", tc.typ, tc.value, err)
			}
		}
	}
}

func TestCheckInputsNamesAndModels(t *testing.T) {
	t.Parallel()
	report := &Model{Name: "Report", Fields: []ModelField{{Name: "k", Type: Type{Name: "int"}}}}
	sig, err := NewSignature("", []Field{{Name: "a"}, {Name: "report", Type: Type{Name: "Report", Model: report}}}, []Field{{Name: "out"}})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		`{"a": "x", "report": {"k": 1, "extra": 2}}`: "", // pydantic ignores extra keys
		`{"report": {}}`:                         "inputs.a: expected str, got nothing (the input is required)",
		`{"a": "x", "report": {"k": 1}, "b": 1}`: "inputs.b: expected no such input (the inputs are a, report), got a number (1)",
		`{"a": "x", "report": "not a model"}`:    "inputs.report: expected Report, got a JSON string",
		`{"a": "x", "report": {}}`:               "inputs.report.k: expected int, got nothing (the field is required)",
		`{"a": "x", "report": {"k": [1]}}`:       "inputs.report.k: expected int, got a JSON array",
	} {
		err := sig.CheckInputs(decodeCheckInputs(t, in))
		if got := ""; err != nil {
			got = err.Error()
			if got != want {
				t.Errorf("%s:\n got %s\nwant %s", in, got, want)
			}
		} else if want != "" {
			t.Errorf("%s: accepted, want %s", in, want)
		}
	}
}

func TestFieldsSchema(t *testing.T) {
	t.Parallel()
	claims, err := ParseType("list[str]")
	if err != nil {
		t.Fatal(err)
	}
	finding := &Model{Name: "Finding", Fields: []ModelField{{Name: "text", Type: Type{Name: "str"}}}}
	findings := Type{Name: "list", Args: []Type{{Name: "Finding", Model: finding}}}
	got, err := json.Marshal(FieldsSchema("Inputs", []Field{
		{Name: "claims", Type: claims, Desc: "The claims"}, {Name: "quote", Type: Type{Name: "str"}, Desc: "${quote}"},
		{Name: "findings", Type: findings},
	}))
	if err != nil {
		t.Fatal(err)
	}
	// pydantic's model_json_schema() of the same model (extra="forbid").
	const want = `{"$defs":{"Finding":{"properties":{"text":{"title":"Text","type":"string"}},"required":["text"],"title":"Finding","type":"object"}},` +
		`"additionalProperties":false,"properties":{"claims":{"description":"The claims","items":{"type":"string"},"title":"Claims","type":"array"},` +
		`"quote":{"title":"Quote","type":"string"},"findings":{"items":{"$ref":"#/$defs/Finding"},"title":"Findings","type":"array"}},` +
		`"required":["claims","quote","findings"],"title":"Inputs","type":"object"}`
	if string(got) != want {
		t.Errorf("schema\n got %s\nwant %s", got, want)
	}
}
