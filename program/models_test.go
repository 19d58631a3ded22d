package program_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/program/pysource"
)

// modelCase is one signature of testdata/models/models.json, which
// generate.py writes by running pydantic 2.13.4 and the code DSPy 3.3.1 and
// openai-python use (see its docstring).
type modelCase struct {
	Name      string            `json:"name"`
	Signature string            `json:"signature"`
	Source    string            `json:"source"`
	Notes     map[string]string `json:"notes"`
	Schemas   map[string]string `json:"schemas"`
	Wire      *string           `json:"wire"`
	KeySchema *string           `json:"key_schema"`
	Checks    []struct {
		Field  string          `json:"field"`
		Input  json.RawMessage `json:"input"`
		OK     bool            `json:"ok"`
		Result json.RawMessage `json:"result"`
		Error  string          `json:"error"`
	} `json:"validations"`
}

func readModelCases(t *testing.T) []modelCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "models", "models.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []modelCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	return file.Cases
}

func modelSignature(t *testing.T, c modelCase) *program.Signature {
	t.Helper()
	return sourceSignature(t, c.Name+".py", c.Source, c.Signature)
}

// sourceSignature reads src as the user's file name is read (pydantic
// models included) and builds its class's signature.
func sourceSignature(t *testing.T, name, src, class string) *program.Signature {
	t.Helper()
	f, err := pysource.Read(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cls, err := f.Signature(class)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := cls.Signature()
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// The "must adhere to the JSON schema" note of each model output is
// pydantic's schema ($defs, defaults, descriptions, titles, a docstring as
// description, a $ref's redundant description dropped), type first.
func TestModelSchemaNotes(t *testing.T) {
	t.Parallel()
	for _, c := range readModelCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			sig := modelSignature(t, c)
			for _, adapter := range []program.Adapter{program.ChatAdapter{}, program.JSONAdapter{}} {
				msgs := adapter.Format(sig, nil, map[string]any{})
				system := msgs[0].Content
				if adapter.Name() == "JSONAdapter" {
					// The JSON structure shows the placeholders json.dumps'd.
					system = strings.ReplaceAll(strings.ReplaceAll(system, `\"`, `"`), `\\`, `\`)
				}
				for field, note := range c.Notes {
					if !strings.Contains(system, "{"+field+"}        # note: the value you produce must adhere to the JSON schema: "+note) {
						t.Errorf("%s: the note of %s is not pydantic's\nwant %s\nin   %s", adapter.Name(), field, note, system)
					}
				}
			}
		})
	}
}

// Type.JSONSchema is pydantic's TypeAdapter(T).json_schema(), key order
// included.
func TestModelJSONSchema(t *testing.T) {
	t.Parallel()
	for _, c := range readModelCases(t) {
		sig := modelSignature(t, c)
		for field, want := range c.Schemas {
			f, _ := sig.Output(field)
			if got := string(f.Type.JSONSchema()); got != want {
				t.Errorf("%s: %s: schema\n got %s\nwant %s", c.Name, field, got, want)
			}
		}
	}
}

// The response_format of the structured-outputs attempt is what LiteLLM
// sends for DSPy's DSPyProgramOutputs: enforce_required, then
// to_strict_json_schema (null defaults dropped, a $ref with siblings
// inlined), byte for byte.
func TestModelResponseFormat(t *testing.T) {
	t.Parallel()
	for _, c := range readModelCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			sig := modelSignature(t, c)
			prog, err := program.NewProgram(program.NamedPredict{Key: "predict", Predict: program.NewPredict(sig)})
			if err != nil {
				t.Fatal(err)
			}
			inputs := map[string]any{}
			for _, f := range sig.Inputs() {
				inputs[f.Name] = "x"
			}
			lm := &recordingLM{}
			var pe *program.ParseError
			if _, err := prog.Run(context.Background(), lm, inputs, nil); !errors.As(err, &pe) {
				t.Fatalf("Run = %v, want a parse error", err)
			}
			var got []string
			for _, req := range lm.reqs[1:] {
				got = append(got, wireFormat(req.ResponseFormat))
			}
			want := []string{`{"type":"json_object"}`}
			if c.Wire != nil {
				want = []string{*c.Wire, `{"type":"json_object"}`}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("response_format (-litellm +program):\n%s", diff)
			}
			if c.KeySchema != nil {
				// DSPy hashes the schema before LiteLLM's strict rewrite.
				rf := lm.reqs[1].ResponseFormat
				key := rf.KeySchema
				if key == nil {
					key = rf.Schema
				}
				if diff := cmp.Diff(*c.KeySchema, string(key)); diff != "" {
					t.Errorf("schema DSPy hashes (-dspy +program):\n%s", diff)
				}
			}
		})
	}
}

// Values are validated as pydantic's lax mode does: coercions, defaults
// filled in field order, extra keys ignored, every error collected with
// its path and pydantic's exact text.
func TestModelValidation(t *testing.T) {
	t.Parallel()
	for _, c := range readModelCases(t) {
		sig := modelSignature(t, c)
		for i, v := range c.Checks {
			t.Run(c.Name+"/"+v.Field+"/"+strings.Repeat("i", i+1), func(t *testing.T) {
				f, ok := sig.Output(v.Field)
				if !ok {
					t.Fatalf("no output %s", v.Field)
				}
				in, err := program.DecodeJSON(v.Input)
				if err != nil {
					t.Fatal(err)
				}
				got, err := program.ValidateValue(in, f.Type)
				if !v.OK {
					if err == nil {
						t.Fatalf("validated %v, want pydantic's error:\n%s", got, v.Error)
					}
					if err.Error() != v.Error {
						t.Errorf("error:\n got %s\nwant %s", err, v.Error)
					}
					return
				}
				if err != nil {
					t.Fatalf("error %v, want %s", err, v.Result)
				}
				gotJSON, err := json.Marshal(got)
				if err != nil {
					t.Fatal(err)
				}
				// Key order matters: model_dump gives the fields in order.
				var want any
				if err := json.Unmarshal(v.Result, &want); err != nil {
					t.Fatal(err)
				}
				wantJSON, _ := program.EncodeJSONIndent(mustDecode(t, v.Result))
				gotIndent, _ := program.EncodeJSONIndent(mustDecode(t, gotJSON))
				if diff := cmp.Diff(string(wantJSON), string(gotIndent)); diff != "" {
					t.Errorf("result (-pydantic +program):\n%s", diff)
				}
			})
		}
	}
}

func mustDecode(t *testing.T, data []byte) any {
	t.Helper()
	v, err := program.DecodeJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A model input is printed as DSPy prints the model the caller built:
// json.dumps of model_dump (fields in model order, defaults filled in,
// lax coercions applied), ensure_ascii=False. A value that is not a valid
// model is printed as it came.
func TestModelInputPrinted(t *testing.T) {
	t.Parallel()
	sig := sourceSignature(t, "rec.py", "import dspy\nfrom pydantic import BaseModel\n\n"+
		"class Profile(BaseModel):\n    name: str\n    age: int\n    interests: list[str] = []\n    score: float = 0.5\n\n"+
		"class Recommend(dspy.Signature):\n    profile: Profile = dspy.InputField()\n    pick: str = dspy.OutputField()\n", "Recommend")
	for _, tc := range []struct{ in, want string }{
		// python3: json.dumps(Profile(**d).model_dump(mode="json"), ensure_ascii=False)
		{`{"interests": ["jazz"], "age": "31", "name": "Zoë"}`, `{"name": "Zoë", "age": 31, "interests": ["jazz"], "score": 0.5}`},
		{`{"name": "Bo"}`, `{"name": "Bo"}`},
	} {
		in := mustDecode(t, []byte(tc.in))
		for _, adapter := range []program.Adapter{program.ChatAdapter{}, program.JSONAdapter{}} {
			msgs := adapter.Format(sig, nil, map[string]any{"profile": in})
			if user := msgs[len(msgs)-1].Content; !strings.Contains(user, "[[ ## profile ## ]]\n"+tc.want+"\n") {
				t.Errorf("%s: %s printed as\n%s\nwant %s", adapter.Name(), tc.in, user, tc.want)
			}
		}
	}
}

// Parse cases of DSPy's generator whose vectors are held back: the
// results follow from DSPy's parse_value (json_repair closes an unclosed
// object, reads single quotes; pydantic coerces "7" and ignores extra
// keys).
func TestModelParsesHeldBack(t *testing.T) {
	t.Parallel()
	var src string
	for _, c := range readTyped[parseCase](t, "typed_chat_parse.json") {
		if c.SignatureName == "WriteReport" {
			src = c.SignatureSource
		}
	}
	sig := sourceSignature(t, "report.py", src, "WriteReport")
	for _, tc := range []struct {
		name       string
		adapter    program.Adapter
		completion string
		want       string
	}{
		{"pydantic/malformed_unclosed", program.ChatAdapter{},
			"[[ ## report ## ]]\n{\"title\": \"Bees\", \"summary\": \"Declining.\", \"citations\": [{\"source\": \"FAO\", \"page\": 12}",
			`{"report": {"title": "Bees", "summary": "Declining.", "citations": [{"source": "FAO", "page": 12}]}}`},
		{"pydantic/python_literal", program.ChatAdapter{},
			"[[ ## report ## ]]\n{'title': 'Bees', 'summary': 'Declining.', 'citations': []}",
			`{"report": {"title": "Bees", "summary": "Declining.", "citations": []}}`},
		{"nested_valid_extra_key", program.JSONAdapter{},
			`{"report": {"title": "T", "summary": "S", "citations": [{"source": "A", "page": "7", "url": "u"}]}}`,
			`{"report": {"title": "T", "summary": "S", "citations": [{"source": "A", "page": 7}]}}`},
	} {
		got, err := tc.adapter.Parse(sig, tc.completion)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if b, _ := program.EncodeJSONIndent(got); string(b) != string(mustIndent(t, tc.want)) {
			t.Errorf("%s: parsed\n%s\nwant\n%s", tc.name, b, mustIndent(t, tc.want))
		}
	}
}

func mustIndent(t *testing.T, s string) []byte {
	t.Helper()
	b, err := program.EncodeJSONIndent(mustDecode(t, []byte(s)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Constraints given to dspy.OutputField/InputField are shown, as DSPy's
// get_field_description_string does, on a "Constraints:" line after the
// field's description (PYDANTIC_CONSTRAINT_MAP, values as Python's str(),
// in the order written; pattern= has no text). DSPy never validates them:
// parse_value reads only the annotation, and structured outputs drop them.
func TestSignatureFieldConstraints(t *testing.T) {
	t.Parallel()
	sig := sourceSignature(t, "c.py", `import dspy

class Rate(dspy.Signature):
    """Rate it."""
    text: str = dspy.InputField(min_length=1)
    score: float = dspy.OutputField(desc="between 0 and 1", ge=0.0, le=1)
    count: int = dspy.OutputField(gt=0, multiple_of=2, allow_inf_nan=False)
    label: str = dspy.OutputField(pattern="^[a-z]+$", max_length=3)
`, "Rate")
	want := "Your input fields are:\n1. `text` (str): \nConstraints: minimum length: 1\n" +
		"Your output fields are:\n1. `score` (float): between 0 and 1\nConstraints: greater than or equal to: 0.0, less than or equal to: 1\n" +
		"2. `count` (int): \nConstraints: greater than: 0, a multiple of the given number: 2, allow 'inf', '-inf', 'nan' values: False\n" +
		"3. `label` (str): \nConstraints: maximum length: 3\n"
	msgs := program.ChatAdapter{}.Format(sig, nil, map[string]any{"text": "x"})
	if !strings.HasPrefix(msgs[0].Content, want) {
		t.Errorf("field descriptions:\n%s\nwant them to start\n%s", msgs[0].Content, want)
	}
	// A value outside them still parses, as in DSPy.
	out, err := program.ChatAdapter{}.Parse(sig, "[[ ## score ## ]]\n7\n\n[[ ## count ## ]]\n-3\n\n[[ ## label ## ]]\nABCDE\n\n[[ ## completed ## ]]")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if v, _ := out.Get("score"); v != 7.0 {
		t.Errorf("score = %v", v)
	}
}
