package fakelm

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/qaqueue/qaqueue/program"
)

// Text DSPy's ChatAdapter and JSONAdapter put in the system message; the fake
// reads each output field's type from it.
const (
	outputListHeader = "Your output fields are:\n"
	jsonOutputsBlock = "Outputs will be a JSON object with the following fields.\n\n"
	schemaNote       = "# note: the value you produce must adhere to the JSON schema: "
)

var (
	// outputLineRE is one line of the field list: "1. `count` (int): desc".
	outputLineRE = regexp.MustCompile("^[0-9]+\\. `([^`]+)` \\(")
	// noteRE is a placeholder with a JSON schema note, one line per field.
	noteRE = regexp.MustCompile(`(?m)^\{([\p{L}\p{N}_]+)\} +` + regexp.QuoteMeta(schemaNote) + `(.+)$`)
)

// fieldSchemas reads the output fields' JSON schemas from a DSPy system
// message: the schema note of a field when it has one (lists, dicts,
// optionals, models), else one built from the type name in the field list
// (int, float, bool, Literal). A field it cannot type is absent (a str).
func fieldSchemas(system string) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for name, typ := range outputTypes(system) {
		if s := scalarSchema(typ); s != nil {
			out[name] = s
		}
	}
	notes := system
	if i := strings.Index(system, jsonOutputsBlock); i >= 0 {
		// JSONAdapter puts each placeholder, note included, in a JSON string.
		var block map[string]string
		if json.NewDecoder(strings.NewReader(system[i+len(jsonOutputsBlock):])).Decode(&block) == nil {
			var b strings.Builder
			for _, v := range block {
				b.WriteString(v + "\n")
			}
			notes = b.String()
		}
	}
	for _, m := range noteRE.FindAllStringSubmatch(notes, -1) {
		if json.Valid([]byte(m[2])) {
			out[m[1]] = json.RawMessage(m[2])
		}
	}
	return out
}

// outputTypes maps each field of the "Your output fields are:" list to its
// type name.
func outputTypes(system string) map[string]string {
	out := map[string]string{}
	i := strings.Index(system, outputListHeader)
	if i < 0 {
		return out
	}
	for _, line := range strings.Split(system[i+len(outputListHeader):], "\n") {
		m := outputLineRE.FindStringSubmatchIndex(line)
		if m == nil {
			if strings.HasPrefix(line, "All interactions") {
				break
			}
			continue // a description's continuation line
		}
		if typ, ok := parenthesized(line[m[1]:]); ok {
			out[line[m[2]:m[3]]] = typ
		}
	}
	return out
}

// parenthesized returns s up to the ")" that closes an already open "(",
// skipping brackets and quoted strings (a Literal's values may hold any).
func parenthesized(s string) (string, bool) {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '[' || c == '(':
			depth++
		case c == ']':
			depth--
		case c == ')':
			if depth == 0 {
				return s[:i], true
			}
			depth--
		}
	}
	return "", false
}

// scalarSchema is the JSON schema of a type DSPy gives no schema note: int,
// float, bool and Literal. Anything else is nil.
func scalarSchema(typ string) json.RawMessage {
	switch typ {
	case "int":
		return json.RawMessage(`{"type": "integer"}`)
	case "float":
		return json.RawMessage(`{"type": "number"}`)
	case "bool":
		return json.RawMessage(`{"type": "boolean"}`)
	}
	if !strings.HasPrefix(typ, "Literal[") {
		return nil
	}
	t, err := program.ParseType(typ)
	if err != nil || t.Name != "Literal" || len(t.Values) == 0 {
		return nil
	}
	enum, err := json.Marshal(map[string]any{"enum": t.Values})
	if err != nil {
		return nil
	}
	return enum
}
