package fakelm

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/program/pysource"
)

// renderVector is one of DSPy's recorded renders of a typed signature.
type renderVector struct {
	ID              string          `json:"id"`
	SignatureName   string          `json:"signature_name"`
	SignatureSource string          `json:"signature_source"`
	ModuleType      string          `json:"module_type"`
	Messages        json.RawMessage `json:"messages"`
	Signature       struct {
		Instructions string     `json:"instructions"`
		Inputs       []vecField `json:"input_fields"`
		Outputs      []vecField `json:"output_fields"`
	} `json:"effective_signature"`
}

type vecField struct {
	Name       string `json:"name"`
	Annotation string `json:"annotation"`
}

// wireVector is the response_format LiteLLM sends for a JSONAdapter render.
type wireVector struct {
	ID       string            `json:"id"`
	WireJSON map[string]string `json:"wire_json"`
}

const openAIWire = "openai_provider__openai_python_2_53_0_openapi_dumps"

func readVectors[T any](t *testing.T, name string) []T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "vectors-typed", name))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []T `json:"vectors"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) == 0 {
		t.Fatalf("%s has no vectors", name)
	}
	return file.Vectors
}

// typedSignature reads the vector's signature source as a user's file is
// read (pydantic models included) and builds its module's signature, so
// program's own parsers check every answer.
func typedSignature(t *testing.T, v renderVector) *program.Signature {
	t.Helper()
	f, err := pysource.Read(v.SignatureName+".py", []byte(v.SignatureSource))
	if err != nil {
		t.Fatalf("%s: %v", v.ID, err)
	}
	cls, err := f.Signature(v.SignatureName)
	if err != nil {
		t.Fatalf("%s: %v", v.ID, err)
	}
	sig, err := cls.Signature()
	if err != nil {
		t.Fatalf("%s: %v", v.ID, err)
	}
	if v.ModuleType == "ChainOfThought" {
		cot, err := program.NewChainOfThought(sig)
		if err != nil {
			t.Fatalf("%s: %v", v.ID, err)
		}
		sig = cot.Signature()
	}
	var want []string
	for _, f := range v.Signature.Outputs {
		want = append(want, f.Name)
	}
	if got := sig.OutputNames(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: outputs %v, DSPy's %v", v.ID, got, want)
	}
	return sig
}

// wireFormats maps each vector id to the structured-outputs
// response_format LiteLLM sends for it.
func wireFormats(t *testing.T) map[string]string {
	t.Helper()
	formats := map[string]string{}
	for _, w := range readVectors[wireVector](t, "response_format_wire.json") {
		formats[w.ID] = w.WireJSON[openAIWire]
	}
	return formats
}

func requestBody(t *testing.T, messages json.RawMessage, responseFormat string) []byte {
	t.Helper()
	body := map[string]json.RawMessage{"model": json.RawMessage(`"gpt-4o-mini"`), "messages": messages}
	if responseFormat != "" {
		body["response_format"] = json.RawMessage(responseFormat)
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// maxTypedAnswer bounds an answer's length: values are short.
const maxTypedAnswer = 1500

// TestTypedChatAnswers sends every ChatAdapter render DSPy recorded for a
// typed signature to the fake and parses the answer with program's
// ChatAdapter, as a worker would: every output field must parse, in order,
// into a value of its declared type.
func TestTypedChatAnswers(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	for _, v := range readVectors[renderVector](t, "typed_chat_renders.json") {
		sig := typedSignature(t, v)
		body := requestBody(t, v.Messages, "")
		text := completionOf(t, s, body)
		if !strings.HasSuffix(text, "[[ ## completed ## ]]") || len(text) > maxTypedAnswer {
			t.Errorf("%s: answer is not a short ChatAdapter answer:\n%s", v.ID, text)
		}
		checkParsed(t, v.ID, sig, text, program.ChatAdapter{})
		if again := completionOf(t, s, body); again != text {
			t.Errorf("%s: same request, different answer:\n%s\n%s", v.ID, text, again)
		}
	}
}

// TestTypedJSONAnswers does the same for every JSONAdapter render, under
// structured outputs (the response_format's json_schema, as LiteLLM sends
// it) and JSON mode ({"type": "json_object"}: types from the prompt only).
func TestTypedJSONAnswers(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	formats := wireFormats(t)
	for _, v := range readVectors[renderVector](t, "typed_json_renders.json") {
		sig := typedSignature(t, v)
		wire, ok := formats[v.ID]
		if !ok {
			t.Fatalf("%s: no wire response_format", v.ID)
		}
		for _, rf := range []string{wire, `{"type":"json_object"}`} {
			name := v.ID + " " + rf[:min(len(rf), 40)]
			text := completionOf(t, s, requestBody(t, v.Messages, rf))
			var obj map[string]json.RawMessage
			if err := json.Unmarshal([]byte(text), &obj); err != nil || len(text) > maxTypedAnswer {
				t.Errorf("%s: answer is not a short JSON object (%v):\n%s", name, err, text)
			}
			checkParsed(t, name, sig, text, program.JSONAdapter{})
		}
	}
}

// checkParsed parses text with adapter and checks every output's value.
func checkParsed(t *testing.T, name string, sig *program.Signature, text string, adapter program.Adapter) {
	t.Helper()
	got, err := adapter.Parse(sig, text)
	if err != nil {
		t.Errorf("%s: %s cannot parse the answer: %v\n%s", name, adapter.Name(), err, text)
		return
	}
	if keys, want := strings.Join(got.Keys(), ","), strings.Join(sig.OutputNames(), ","); keys != want {
		t.Errorf("%s: parsed fields %s, want %s", name, keys, want)
	}
	for _, f := range sig.Outputs() {
		val, _ := got.Get(f.Name)
		if err := checkKind(f.Type, val); err != nil {
			t.Errorf("%s: %s (%s): %v\n%s", name, f.Name, f.Type, err, text)
		}
	}
}

// checkKind reports whether v, as program's parsers return it, is exactly
// of type typ: no value that only coerces into it (a "5" for an int).
func checkKind(typ program.Type, v any) error {
	if m := typ.Model; m != nil {
		return checkModel(m, v)
	}
	ok := false
	switch typ.Name {
	case "", "str":
		_, ok = v.(string)
	case "int":
		_, ok = v.(int64)
	case "float":
		_, ok = v.(float64)
	case "bool":
		_, ok = v.(bool)
	case "Any":
		ok = true
	case "Literal":
		for _, lv := range typ.Values {
			ok = ok || lv == v
		}
	case "list":
		list, isList := v.([]any)
		if !isList || len(list) == 0 {
			return fmt.Errorf("%#v is not a non-empty list", v)
		}
		for i, e := range list {
			if err := checkKind(typ.Args[0], e); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		return nil
	case "dict":
		m, isMap := v.(*program.Map)
		if !isMap || m.Len() == 0 {
			return fmt.Errorf("%#v is not a non-empty dict", v)
		}
		for _, k := range m.Keys() {
			e, _ := m.Get(k)
			if err := checkKind(typ.Args[1], e); err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
		}
		return nil
	case "Union", "UnionType":
		if v == nil {
			return fmt.Errorf("None, want a value")
		}
		for _, a := range typ.Args {
			ok = ok || (a.Name != "NoneType" && checkKind(a, v) == nil)
		}
	default:
		return fmt.Errorf("test does not know type %s", typ)
	}
	if !ok {
		return fmt.Errorf("%#v (%T) is not a %s", v, v, typ)
	}
	return nil
}

// isEmpty reports an empty list or dict (a default factory's value).
func isEmpty(v any) bool {
	switch t := v.(type) {
	case []any:
		return len(t) == 0
	case *program.Map:
		return t.Len() == 0
	}
	return false
}

// checkModel checks a parsed model: every field present, each of its
// type, or (a field the fake may leave out) equal to its default.
func checkModel(m *program.Model, v any) error {
	obj, ok := v.(*program.Map)
	if !ok {
		return fmt.Errorf("%#v is not a %s object", v, m.Name)
	}
	for _, f := range m.Fields {
		e, has := obj.Get(f.Name)
		if !has {
			return fmt.Errorf("%s: no field %s", m.Name, f.Name)
		}
		if !f.Required() && (e == nil || fmt.Sprint(e) == fmt.Sprint(f.Default) || isEmpty(e)) {
			continue
		}
		if err := checkKind(f.Type, e); err != nil {
			return fmt.Errorf("%s.%s: %w", m.Name, f.Name, err)
		}
	}
	return nil
}

// findingsSchema is what DSPy sends for "findings: list[Finding]" with
// Finding(claim: str, severity: Literal[...], confidence: float =
// Field(ge=0.5, le=0.6), page: int = Field(gt=10, lt=13), note:
// Optional[str] = None): a list of models with constraints and an
// optional property.
const findingsSchema = `{"$defs":{"Finding":{"additionalProperties":false,"properties":{"claim":{"title":"Claim","type":"string"},"severity":{"enum":["low","high"],"title":"Severity","type":"string"},"confidence":{"maximum":0.6,"minimum":0.5,"title":"Confidence","type":"number"},"page":{"exclusiveMaximum":13,"exclusiveMinimum":10,"title":"Page","type":"integer"},"note":{"anyOf":[{"type":"string"},{"type":"null"}],"default":null,"title":"Note"}},"required":["claim","severity","confidence","page"],"title":"Finding","type":"object"}},"additionalProperties":false,"properties":{"findings":{"items":{"$ref":"#/$defs/Finding"},"title":"Findings","type":"array"}},"required":["findings"],"title":"DSPyProgramOutputs","type":"object"}`

// TestTypedConstraints checks a list of models whose fields carry
// pydantic constraints: every item has the model's required fields, in
// range, and the fake leaves the optional one out.
func TestTypedConstraints(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	user := "[[ ## report ## ]]\nThe audit of the bridge found cracks.\n\nRespond with a JSON object in the following order of fields: `findings` (must be formatted as a valid Python list[Finding])."
	rf := `{"type":"json_schema","json_schema":{"schema":` + findingsSchema + `,"name":"DSPyProgramOutputs","strict":true}}`
	body, _ := json.Marshal(map[string]any{"model": "m", "messages": msgs(user), "response_format": json.RawMessage(rf)})
	text := completionOf(t, s, body)
	var got struct {
		Findings []map[string]any `json:"findings"`
	}
	if err := json.Unmarshal([]byte(text), &got); err != nil || len(got.Findings) == 0 {
		t.Fatalf("answer %s: %v", text, err)
	}
	for i, f := range got.Findings {
		claim, _ := f["claim"].(string)
		severity, _ := f["severity"].(string)
		confidence, _ := f["confidence"].(float64)
		page, _ := f["page"].(float64)
		if claim == "" || (severity != "low" && severity != "high") || confidence < 0.5 || confidence > 0.6 ||
			(page != 11 && page != 12) || len(f) != 4 {
			t.Errorf("finding %d breaks its model: %v\n%s", i, f, text)
		}
	}
	if got.Findings[0]["claim"] == got.Findings[1]["claim"] {
		t.Errorf("the list's items are all alike: %s", text)
	}
}

// TestTypedHostileSchema sends a model that contains itself, with wide
// lists: the answer stays valid JSON and small.
func TestTypedHostileSchema(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	node := `{"$defs":{"Node":{"properties":{"a":{"items":{"$ref":"#/$defs/Node"},"minItems":1000,"type":"array"},"b":{"$ref":"#/$defs/Node"}},"required":["a","b"],"type":"object"}},"properties":{"tree":{"$ref":"#/$defs/Node"}},"required":["tree"],"type":"object"}`
	rf := `{"type":"json_schema","json_schema":{"schema":` + node + `,"name":"DSPyProgramOutputs","strict":true}}`
	body, _ := json.Marshal(map[string]any{"model": "m", "messages": msgs("[[ ## q ## ]]\nx"), "response_format": json.RawMessage(rf)})
	text := completionOf(t, s, body)
	if !json.Valid([]byte(text)) || !strings.HasPrefix(text, `{"tree": {"a": [`) || len(text) > 64<<10 {
		t.Errorf("answer of %d bytes: %.300s", len(text), text)
	}
}

func FuzzTypedAnswer(f *testing.F) {
	for _, seed := range [][3]string{
		{"Your output fields are:\n1. `n` (int): \n2. `l` (Literal['a', \"b)\"]):\nAll interactions", "Respond with the corresponding output fields, starting with the field `[[ ## n ## ]]`, then `[[ ## l ## ]]`", ""},
		{"Your output fields are:\n1. `r` (Report):\n\n{r}        " + schemaNote + `{"type": "object", "$defs": {"C": {"type": "object", "properties": {"p": {"type": "integer"}}, "required": ["p"]}}, "properties": {"c": {"type": "array", "items": {"$ref": "#/$defs/C"}}}, "required": ["c"]}`, "Respond with the corresponding output fields, starting with the field `[[ ## r ## ]]`", ""},
		{"Outputs will be a JSON object with the following fields.\n\n{\n  \"x\": \"{x}        # note: the value you produce must adhere to the JSON schema: {\\\"type\\\": \\\"array\\\"}\"\n}", "Respond with a JSON object in the following order of fields: `x`.", `{"properties": {"x": {"anyOf": [{"type": "null"}, {"minimum": 1e308, "type": "integer"}]}}}`},
		{"", "q", findingsSchema},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	// program's own renders of a signature with pydantic model outputs
	// (a list of models with a Literal, a nested optional model).
	sig := sourceSignature(f, "audit.py", findingsSource, "Audit")
	for _, a := range []program.Adapter{program.ChatAdapter{}, program.JSONAdapter{}} {
		msgs := a.Format(sig, nil, map[string]any{"code": "x"})
		f.Add(msgs[0].Content, msgs[len(msgs)-1].Content, "")
	}
	f.Fuzz(func(t *testing.T, system, user, schema string) {
		var rs json.RawMessage
		if json.Valid([]byte(schema)) {
			rs = json.RawMessage(schema)
		}
		p := parsePrompt(user)
		a := newAnswerer(system+user, p).typed(system, rs)
		chat := a.text(p, false)
		if strings.Join(tokenize(chat), "") != chat {
			t.Fatalf("tokens do not concatenate back to %q", chat)
		}
		if !p.jsonFields {
			for _, f := range p.fields {
				if !strings.Contains(chat, "[[ ## "+f+" ## ]]") {
					t.Fatalf("field %q missing from %q", f, chat)
				}
			}
		}
		if js := a.text(p, true); !json.Valid([]byte(js)) {
			t.Fatalf("JSON answer is not JSON: %q", js)
		}
	})
}
