package program

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Type is a field annotation: a Python type as DSPy sees it. The zero value
// is str.
type Type struct {
	// Name is the class or form: "str", "int", "float", "bool", "list",
	// "dict", "tuple", "Any", "NoneType", "Literal", "Union" (typing.Union
	// and Optional) or "UnionType" (the X | Y syntax), or a pydantic
	// model's class name when Model is set.
	Name string
	// Args are the type arguments of a generic or union.
	Args []Type
	// Values are a Literal's values: string, int64, float64, bool or nil.
	Values []any
	// Model is the pydantic model the type names ("Report"), nil for every
	// other type. Types are rendered (JSON schema with $defs), parsed and
	// validated as pydantic does them.
	Model *Model
}

// ParseType parses a Python annotation such as "list[str]",
// "dict[str, int]", "Literal['a', 'b']", "Optional[str]" or "int | None".
func ParseType(s string) (Type, error) {
	p := &typeParser{src: s}
	t, err := p.parseUnion()
	if err != nil {
		return Type{}, fmt.Errorf("parse type %q: %w", s, err)
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return Type{}, fmt.Errorf("parse type %q: unexpected %q", s, p.src[p.pos:])
	}
	return t, nil
}

// IsStr reports whether the type is exactly str, the type DSPy treats as
// free text (no JSON parsing, numbered lists for list values, no notes).
func (t Type) IsStr() bool { return t.Name == "" || t.Name == "str" }

func (t Type) name() string {
	if t.Name == "" {
		return "str"
	}
	return t.Name
}

// String is DSPy's get_annotation_name: "str", "list[str]",
// "Literal['a', 'b']", "Union[str, NoneType]", "UnionType[str, NoneType]".
func (t Type) String() string {
	if t.Name == "Literal" {
		parts := make([]string, len(t.Values))
		for i, v := range t.Values {
			if s, ok := v.(string); ok {
				parts[i] = literalQuote(s)
			} else {
				parts[i] = pyRepr(v)
			}
		}
		return "Literal[" + strings.Join(parts, ", ") + "]"
	}
	if len(t.Args) == 0 {
		return t.name()
	}
	parts := make([]string, len(t.Args))
	for i, a := range t.Args {
		parts[i] = a.String()
	}
	return t.name() + "[" + strings.Join(parts, ", ") + "]"
}

// allowsNone reports whether None is a valid value (Optional, X | None,
// Any, or a Literal with None).
func (t Type) allowsNone() bool {
	switch t.Name {
	case "NoneType", "Any":
		return true
	case "Union", "UnionType":
		for _, a := range t.Args {
			if a.allowsNone() {
				return true
			}
		}
	case "Literal":
		for _, v := range t.Values {
			if v == nil {
				return true
			}
		}
	}
	return false
}

// isUnion reports whether t is typing.Union or X | Y.
func (t Type) isUnion() bool { return t.Name == "Union" || t.Name == "UnionType" }

// jsonSchema is pydantic's TypeAdapter(T).json_schema(): models as $refs
// into a top-level $defs, keys sorted as pydantic sorts them.
func (t Type) jsonSchema() *Map { return typeAdapterSchema(t) }

// literalSchemaType is the JSON type shared by all Literal values, or "".
func literalSchemaType(vals []any) string {
	kind := ""
	for i, v := range vals {
		var k string
		switch v.(type) {
		case string:
			k = "string"
		case int64:
			k = "integer"
		case float64:
			k = "number"
		case bool:
			k = "boolean"
		case nil:
			k = "null"
		}
		if i > 0 && k != kind {
			return ""
		}
		kind = k
	}
	return kind
}

// typeFirst reorders a schema recursively with "type" first and the other
// keys sorted, as DSPy does before showing a schema to the LM.
func typeFirst(v any) any {
	switch t := v.(type) {
	case *Map:
		keys := t.Keys()
		sortStrings(keys)
		out := NewMap()
		if tv, ok := t.Get("type"); ok {
			out.Set("type", typeFirst(tv))
		}
		for _, k := range keys {
			if k != "type" {
				out.Set(k, typeFirst(t.values[k]))
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = typeFirst(e)
		}
		return out
	}
	return v
}

// typeParser is a small recursive-descent parser for Python annotations.
type typeParser struct {
	src string
	pos int
}

func (p *typeParser) skipSpace() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
}

func (p *typeParser) peek() byte {
	p.skipSpace()
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func (p *typeParser) expect(c byte) error {
	if p.peek() != c {
		return fmt.Errorf("expected %q at offset %d", c, p.pos)
	}
	p.pos++
	return nil
}

func (p *typeParser) parseUnion() (Type, error) {
	first, err := p.parsePrimary()
	if err != nil {
		return Type{}, err
	}
	if p.peek() != '|' {
		return first, nil
	}
	u := Type{Name: "UnionType", Args: []Type{first}}
	for p.peek() == '|' {
		p.pos++
		next, err := p.parsePrimary()
		if err != nil {
			return Type{}, err
		}
		u.Args = append(u.Args, next)
	}
	return u, nil
}

func (p *typeParser) ident() string {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.src) {
		r, n := utf8.DecodeRuneInString(p.src[p.pos:])
		if !(isWordRune(r) || r == '.') {
			break
		}
		p.pos += n
	}
	return p.src[start:p.pos]
}

// UnservedDSPyTypes is what an error about a dspy.* annotation adds, in a
// string signature and in a signature file alike: DSPy renders and parses
// these types with code of its own that program does not reproduce.
const UnservedDSPyTypes = "DSPy's special types such as Image, Audio, History and Tool are not served"

// supportedTypes is what an error about an unknown type name adds: the
// forms canonicalTypeName accepts.
const supportedTypes = "supported types: str, int, float, bool, list[...], dict[...], tuple[...], set[...], frozenset[...], Literal[...], Optional[...], Union[...], X | None, Any"

// typeNames maps the names an annotation may use to DSPy's type names.
func canonicalTypeName(name string) (string, bool) {
	name = strings.TrimPrefix(name, "typing.")
	switch name {
	case "str", "int", "float", "bool", "list", "dict", "tuple", "set", "frozenset", "Any", "Literal", "Optional", "Union":
		return name, true
	case "List", "Dict", "Tuple", "Set", "FrozenSet":
		return strings.ToLower(name), true
	case "None", "NoneType":
		return "NoneType", true
	}
	return "", false
}

func (p *typeParser) parsePrimary() (Type, error) {
	if p.peek() == '.' && strings.HasPrefix(p.src[p.pos:], "...") {
		p.pos += 3
		return Type{Name: "..."}, nil
	}
	raw := p.ident()
	if raw == "" {
		return Type{}, fmt.Errorf("expected a type name at offset %d", p.pos)
	}
	name, ok := canonicalTypeName(raw)
	if !ok {
		if strings.HasPrefix(raw, "dspy.") {
			return Type{}, fmt.Errorf("unsupported type %q (%s)", raw, UnservedDSPyTypes)
		}
		return Type{}, fmt.Errorf("unsupported type %q (%s)", raw, supportedTypes)
	}
	if p.peek() != '[' {
		if name == "Literal" || name == "Optional" || name == "Union" {
			return Type{}, fmt.Errorf("%s needs arguments", name)
		}
		return Type{Name: name}, nil
	}
	p.pos++
	if name == "Literal" {
		vals, err := p.literalValues()
		if err != nil {
			return Type{}, err
		}
		return Type{Name: "Literal", Values: vals}, nil
	}
	var args []Type
	for {
		a, err := p.parseUnion()
		if err != nil {
			return Type{}, err
		}
		args = append(args, a)
		if p.peek() != ',' {
			break
		}
		p.pos++
	}
	if err := p.expect(']'); err != nil {
		return Type{}, err
	}
	switch name {
	case "Optional":
		if len(args) != 1 {
			return Type{}, fmt.Errorf("Optional takes one argument")
		}
		return makeUnion(append(args, Type{Name: "NoneType"})), nil
	case "Union":
		return makeUnion(args), nil
	}
	return Type{Name: name, Args: args}, nil
}

// makeUnion builds typing.Union[args]: nested typing.Unions flatten,
// duplicates go, and a single member stands alone.
func makeUnion(args []Type) Type {
	var flat []Type
	for _, a := range args {
		if a.Name == "Union" {
			flat = append(flat, a.Args...)
		} else {
			flat = append(flat, a)
		}
	}
	var uniq []Type
	seen := map[string]bool{}
	for _, a := range flat {
		if k := a.String(); !seen[k] {
			seen[k] = true
			uniq = append(uniq, a)
		}
	}
	if len(uniq) == 1 {
		return uniq[0]
	}
	return Type{Name: "Union", Args: uniq}
}

func (p *typeParser) literalValues() ([]any, error) {
	var vals []any
	for {
		v, err := p.literalValue()
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		if p.peek() != ',' {
			break
		}
		p.pos++
	}
	if err := p.expect(']'); err != nil {
		return nil, err
	}
	return vals, nil
}

func (p *typeParser) literalValue() (any, error) {
	c := p.peek()
	switch {
	case c == '\'' || c == '"':
		return p.quoted(c)
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && strings.IndexByte("0123456789._eE+-", p.src[p.pos]) >= 0 {
			p.pos++
		}
		text := strings.ReplaceAll(p.src[start:p.pos], "_", "")
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return i, nil
		}
		if f, err := strconv.ParseFloat(text, 64); err == nil {
			return f, nil
		}
		return nil, fmt.Errorf("bad number %q", text)
	}
	switch id := p.ident(); id {
	case "True":
		return true, nil
	case "False":
		return false, nil
	case "None":
		return nil, nil
	default:
		return nil, fmt.Errorf("unsupported Literal value %q", id)
	}
}

// quoted reads a Python string literal with the common escapes.
func (p *typeParser) quoted(q byte) (string, error) {
	p.pos++
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == q:
			p.pos++
			return b.String(), nil
		case c == '\\' && p.pos+1 < len(p.src):
			p.pos += 2
			switch e := p.src[p.pos-1]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return "", fmt.Errorf("unterminated string")
}

// isIdentifier reports whether s is a Python identifier.
func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if i == 0 && unicode.IsDigit(r) {
			return false
		}
		if !isWordRune(r) {
			return false
		}
	}
	return true
}
