package pysource

import (
	"strings"

	"github.com/qaqueue/qaqueue/program"
)

// builtinTypes are the Type names program.ParseType produces; any other
// name in a Type read here is a model of the same file.
var builtinTypes = map[string]bool{
	"": true, "str": true, "int": true, "float": true, "bool": true, "list": true, "dict": true,
	"tuple": true, "set": true, "frozenset": true, "Any": true, "NoneType": true, "Literal": true,
	"Union": true, "UnionType": true, "...": true,
}

// ModelRefs returns the model class names a type refers to, in the order
// they appear (with repeats removed). A Type named after a model has no
// Args; program cannot render it yet.
func ModelRefs(t program.Type) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(program.Type)
	walk = func(t program.Type) {
		if !builtinTypes[t.Name] && !seen[t.Name] {
			seen[t.Name] = true
			out = append(out, t.Name)
		}
		for _, a := range t.Args {
			walk(a)
		}
	}
	walk(t)
	return out
}

// annotation reads a field's annotation.
func (r *reader) annotation(toks []token) (program.Type, error) {
	e, err := parseAll(r.file, toks)
	if err != nil {
		return program.Type{}, err
	}
	return r.typeOf(e, 0)
}

// typeOf converts an annotation. Parts that name only built-in types go
// through program.ParseType, so both readers agree on every form it knows;
// the structure around model references and quoted forward references is
// built here.
func (r *reader) typeOf(e *expr, depth int) (program.Type, error) {
	if depth > MaxDepth {
		return program.Type{}, errorf(r.file, e.line, e.col, "annotation nested deeper than %d", MaxDepth)
	}
	if r.plain(e) {
		return r.parseType(e)
	}
	switch e.kind {
	case eString:
		return r.forwardRef(e, depth)
	case eName:
		if r.isModel(e) {
			return program.Type{Name: e.text}, nil
		}
	case eOr:
		u := program.Type{Name: "UnionType"}
		for _, it := range e.items {
			t, err := r.typeOf(it, depth+1)
			if err != nil {
				return program.Type{}, err
			}
			u.Args = append(u.Args, t)
		}
		return u, nil
	case eSubscript:
		return r.generic(e, depth)
	}
	return program.Type{}, errorf(r.file, e.line, e.col, "unsupported annotation")
}

// forwardRef reads a quoted annotation ("Report"), as pydantic resolves it.
func (r *reader) forwardRef(e *expr, depth int) (program.Type, error) {
	if e.fstring || e.bytes {
		return program.Type{}, errorf(r.file, e.line, e.col, "unsupported annotation: an f-string or bytes literal")
	}
	lines, err := lex(r.file, e.text, e.line, e.col+1)
	if err != nil {
		return program.Type{}, err
	}
	if len(lines) != 1 {
		return program.Type{}, errorf(r.file, e.line, e.col, "unsupported annotation: the quoted type %q is not one expression", e.text)
	}
	inner, err := parseAll(r.file, lines[0].toks)
	if err != nil {
		return program.Type{}, err
	}
	return r.typeOf(inner, depth+1)
}

// generic builds list[M], dict[str, M], Optional[M] and Union[...] around
// model references.
func (r *reader) generic(e *expr, depth int) (program.Type, error) {
	if e.head.kind != eName {
		return program.Type{}, errorf(r.file, e.line, e.col, "unsupported annotation")
	}
	name := typingName(r.qualify(e.head.text))
	switch name {
	case "list", "List", "set", "Set", "frozenset", "FrozenSet", "tuple", "Tuple", "dict", "Dict", "Optional", "Union":
	default:
		return program.Type{}, errorf(r.file, e.head.line, e.head.col, "unsupported type %s", e.head.text)
	}
	args := make([]program.Type, len(e.items))
	for i, it := range e.items {
		t, err := r.typeOf(it, depth+1)
		if err != nil {
			return program.Type{}, err
		}
		args[i] = t
	}
	switch name {
	case "list", "List", "set", "Set", "frozenset", "FrozenSet", "tuple", "Tuple", "dict", "Dict":
		return program.Type{Name: strings.ToLower(name), Args: args}, nil
	case "Optional":
		if len(args) != 1 {
			return program.Type{}, errorf(r.file, e.line, e.col, "Optional takes one argument")
		}
		return makeUnion(append(args, program.Type{Name: "NoneType"})), nil
	case "Union":
		return makeUnion(args), nil
	}
	return program.Type{}, errorf(r.file, e.head.line, e.head.col, "unsupported type %s", e.head.text)
}

// typingName strips "typing." (and typing_extensions.) from a name.
func typingName(q string) string {
	for _, p := range []string{"typing.", "typing_extensions."} {
		if strings.HasPrefix(q, p) {
			return q[len(p):]
		}
	}
	return q
}

// makeUnion is typing.Union's normalisation, as program.ParseType applies
// it: nested Unions flatten, repeats go, a single member stands alone.
func makeUnion(args []program.Type) program.Type {
	var flat []program.Type
	for _, a := range args {
		if a.Name == "Union" {
			flat = append(flat, a.Args...)
		} else {
			flat = append(flat, a)
		}
	}
	var uniq []program.Type
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
	return program.Type{Name: "Union", Args: uniq}
}

// isModel reports whether a name is a model class of this file (and not
// shadowed by an import).
func (r *reader) isModel(e *expr) bool {
	_, imported := r.aliases[e.text]
	return e.kind == eName && !imported && r.kinds[e.text] == modelClass
}

// plain reports whether an annotation names only built-in types, with
// strings only as Literal values, so program.ParseType can read it whole.
func (r *reader) plain(e *expr) bool {
	switch e.kind {
	case eName:
		return !r.isModel(e)
	case eNumber, eEllipsis:
		return true
	case eOr:
		for _, it := range e.items {
			if !r.plain(it) {
				return false
			}
		}
		return true
	case eSubscript:
		if e.head.kind != eName || r.isModel(e.head) {
			return false
		}
		if typingName(r.qualify(e.head.text)) == "Literal" {
			return true
		}
		for _, it := range e.items {
			if !r.plain(it) {
				return false
			}
		}
		return true
	}
	return false
}

// render writes a plain annotation in the syntax program.ParseType reads.
func (r *reader) render(e *expr) string {
	switch e.kind {
	case eName:
		q := r.qualify(e.text)
		if t := typingName(q); t != q {
			return "typing." + t
		}
		return q
	case eNumber:
		return e.text
	case eEllipsis:
		return "..."
	case eString:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(e.text) + "'"
	case eOr:
		parts := make([]string, len(e.items))
		for i, it := range e.items {
			parts[i] = r.render(it)
		}
		return strings.Join(parts, " | ")
	case eSubscript:
		parts := make([]string, len(e.items))
		for i, it := range e.items {
			parts[i] = r.render(it)
		}
		return r.render(e.head) + "[" + strings.Join(parts, ", ") + "]"
	}
	return "?"
}

// parseType reads a plain annotation with program.ParseType. On failure it
// points at the first name ParseType does not know.
func (r *reader) parseType(e *expr) (program.Type, error) {
	t, err := program.ParseType(r.render(e))
	if err == nil {
		return t, nil
	}
	if bad := r.unknownName(e, false); bad != nil {
		name := r.qualify(bad.text)
		msg := "unsupported type " + bad.text
		if strings.HasPrefix(name, "dspy.") {
			msg += " (" + program.UnservedDSPyTypes + ")"
		}
		return program.Type{}, errorf(r.file, bad.line, bad.col, "%s", msg)
	}
	return program.Type{}, errorf(r.file, e.line, e.col, "unsupported annotation: %v", err)
}

// unknownName finds the first name in a plain annotation that
// program.ParseType refuses; head says the name is subscripted.
func (r *reader) unknownName(e *expr, head bool) *expr {
	switch e.kind {
	case eName:
		probe := r.render(e)
		if head {
			probe += "[str]"
		}
		if _, err := program.ParseType(probe); err != nil {
			return e
		}
	case eOr:
		for _, it := range e.items {
			if bad := r.unknownName(it, false); bad != nil {
				return bad
			}
		}
	case eSubscript:
		if typingName(r.qualify(e.head.text)) == "Literal" {
			return nil
		}
		if bad := r.unknownName(e.head, true); bad != nil {
			return bad
		}
		for _, it := range e.items {
			if bad := r.unknownName(it, false); bad != nil {
				return bad
			}
		}
	}
	return nil
}
