package program

import "testing"

// ensureStrict goes into every schema of an anyOf or allOf list, as
// openai-python's _ensure_strict_json_schema does (openai/lib/_pydantic.py):
// an inline object there is closed and requires its properties, its null
// default is dropped, and a one-entry allOf is merged into its parent. The
// typed wire vectors hold no inline object under anyOf or allOf (pydantic
// refers to models by $ref), so this pins that part.
func TestEnsureStrictUnionsAndIntersections(t *testing.T) {
	in, err := DecodeJSON([]byte(`{"type": "object", "properties": {
		"u": {"anyOf": [{"type": "object", "properties": {"a": {"type": "integer", "default": null}}}, {"type": "null"}]},
		"i": {"allOf": [{"type": "object", "properties": {"b": {"type": "string"}}}, {"type": "object", "properties": {"c": {"type": "boolean"}}}]},
		"m": {"allOf": [{"type": "object", "properties": {"d": {"type": "number"}}}], "description": "one entry"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := in.(*Map)
	got, err := marshalCompact(ensureStrict(s, s))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"object","properties":{` +
		`"u":{"anyOf":[{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false,"required":["a"]},{"type":"null"}]},` +
		`"i":{"allOf":[{"type":"object","properties":{"b":{"type":"string"}},"additionalProperties":false,"required":["b"]},` +
		`{"type":"object","properties":{"c":{"type":"boolean"}},"additionalProperties":false,"required":["c"]}]},` +
		`"m":{"description":"one entry","type":"object","properties":{"d":{"type":"number"}},"additionalProperties":false,"required":["d"]}},` +
		`"additionalProperties":false,"required":["u","i","m"]}`
	if string(got) != want {
		t.Errorf("strict schema\n %s\nwant\n %s", got, want)
	}
}
