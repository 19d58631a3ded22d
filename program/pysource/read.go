package pysource

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/qaqueue/qaqueue/program"
)

// Error is a problem in a source file, at a 1-based line and byte column.
type Error struct {
	File      string
	Line, Col int
	Msg       string
	// Err is ErrNotYetSupported for what a later step adds, else nil.
	Err error
}

// Error formats the error as file:line:col: message.
func (e *Error) Error() string { return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg) }

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

func errorf(file string, line, col int, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// File is what a signature file declares, classes in declaration order.
type File struct {
	// Name is the file name given to Read, used in errors.
	Name string
	// Signatures and Models are the classes read whole. A class that
	// declares something pysource cannot serve is in neither: its error
	// is kept and returned by Signature or Model, so one class a program
	// does not use cannot stop the file from serving the others.
	Signatures []*SignatureClass
	Models     []*ModelClass

	refused map[string]refusal
}

// refusal is why a signature or model class is not served.
type refusal struct {
	kind classKind
	err  error
}

// SignatureClass is a dspy.Signature subclass.
type SignatureClass struct {
	Name string
	Line int
	// Base is the same-file Signature class this one extends, or "".
	Base string
	// Instructions is the class docstring as written (DSPy applies
	// inspect.cleandoc when it reads them; program.Signature does the
	// same), the base class's when the class has none, or "" for DSPy's
	// default instructions.
	Instructions string
	// Inputs and Outputs are in declaration order, a base class's first.
	Inputs  []Field
	Outputs []Field

	file  string
	owner *File
}

// ModelClass is a pydantic BaseModel subclass.
type ModelClass struct {
	Name string
	Line int
	// Base is the same-file model this one extends, or "".
	Base string
	// Docstring is the class docstring as written, or "".
	Docstring string
	// Fields are in declaration order, a base class's first.
	Fields []Field
}

// Field is one annotated field of a signature or model class.
type Field struct {
	Name      string
	Line, Col int
	// Type is the annotation (str when a signature field has none). A model
	// of the same file appears as a Type named after its class; see
	// ModelRefs.
	Type program.Type
	// Desc is desc= (or description= without desc=) of a dspy field, or
	// description= of a pydantic Field; "" when not given.
	Desc string
	// Prefix is a dspy field's prefix=, "" when not given.
	Prefix string
	// Constraints are pydantic constraints (ge=0, max_length=5, ...) in
	// the order written.
	Constraints []Constraint
	// Default is a model field's default value (string, int64, float64,
	// bool, nil, []any or map[string]any) when HasDefault is set.
	Default    any
	HasDefault bool
	// DefaultFactory is a model field's default_factory (list, dict, or a
	// model name), "" when not given.
	DefaultFactory string
}

// Constraint is one pydantic constraint keyword and its literal value.
type Constraint struct {
	Name  string
	Value any
}

// ErrNotDeclared is wrapped by Signature and Model for a name the file
// declares no such class as.
var ErrNotDeclared = errors.New("not declared")

// Signature returns the signature named name: a dspy.Signature class or a
// NAME = dspy.Signature(...). A signature the file declares but pysource
// cannot serve gives its *Error (file:line:col and what is unsupported);
// a name the file does not declare as one gives an error wrapping
// ErrNotDeclared.
func (f *File) Signature(name string) (*SignatureClass, error) {
	if r, ok := f.refused[name]; ok && r.kind == signatureClass {
		return nil, r.err
	}
	for _, s := range f.Signatures {
		if s.Name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%s: signature %s: %w", f.Name, name, ErrNotDeclared)
}

// Model returns the model class named name, with errors as Signature's.
func (f *File) Model(name string) (*ModelClass, error) {
	if r, ok := f.refused[name]; ok && r.kind == modelClass {
		return nil, r.err
	}
	for _, m := range f.Models {
		if m.Name == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%s: model %s: %w", f.Name, name, ErrNotDeclared)
}

// refuse keeps err as the reason the class name is not served, in place
// of anything read under that name before.
func (f *File) refuse(name string, kind classKind, err error) {
	f.refused[name] = refusal{kind: kind, err: err}
	f.Signatures = slices.DeleteFunc(f.Signatures, func(s *SignatureClass) bool { return s.Name == name })
	f.Models = slices.DeleteFunc(f.Models, func(m *ModelClass) bool { return m.Name == name })
}

// declared reports whether the file has read a signature or model name,
// whole or refused.
func (f *File) declared(name string) bool {
	if _, ok := f.refused[name]; ok {
		return true
	}
	return slices.ContainsFunc(f.Signatures, func(s *SignatureClass) bool { return s.Name == name }) ||
		slices.ContainsFunc(f.Models, func(m *ModelClass) bool { return m.Name == name })
}

// Read reads the Python source of a signature file. name is used in errors
// (file:line:col). It fails only for what makes the file unreadable: text
// it cannot tokenize, a top-level line it cannot place, a class header it
// cannot parse. What a signature or model class declares that pysource
// cannot serve stays with the class (see File.Signature).
func Read(name string, src []byte) (*File, error) {
	lines, err := lex(name, string(src), 1, 1)
	if err != nil {
		return nil, err
	}
	r := &reader{file: name, lines: lines, aliases: map[string]string{}, kinds: map[string]classKind{}, twice: map[string]error{}}
	if err := r.scan(); err != nil {
		return nil, err
	}
	if err := r.read(); err != nil {
		return nil, err
	}
	return r.out, nil
}

type classKind int

const (
	otherClass classKind = iota
	signatureClass
	modelClass
)

type reader struct {
	file  string
	lines []logicalLine
	// aliases maps a name bound by an import to what it names: "dspy",
	// "pydantic.BaseModel", "typing.List".
	aliases map[string]string
	// kinds holds every top-level class's kind, so annotations may name a
	// model declared later (a forward reference).
	kinds map[string]classKind
	// twice holds the error of each signature or model name declared
	// more than once, which refuses every declaration of it.
	twice map[string]error
	out   *File
}

// block returns the index after the lines indented deeper than line i.
func (r *reader) block(i int) int {
	indent := r.lines[i].indent
	j := i + 1
	for j < len(r.lines) && r.lines[j].indent > indent {
		j++
	}
	return j
}

// checkIndent refuses line i unless it is at indent, and refuses a
// deeper line after it unless line i opens a block (ends with ":").
func (r *reader) checkIndent(i, indent int) error {
	ln := r.lines[i]
	if ln.indent != indent {
		t := ln.toks[0]
		return errorf(r.file, t.line, t.col, "unexpected indent")
	}
	if next := i + 1; next < len(r.lines) && r.lines[next].indent > indent && !endsWithColon(ln.toks) {
		t := r.lines[next].toks[0]
		return errorf(r.file, t.line, t.col, "unexpected indent")
	}
	return nil
}

// scan records imports and the kind of every top-level class.
func (r *reader) scan() error {
	for i := 0; i < len(r.lines); i = r.block(i) {
		ln := r.lines[i]
		if err := r.checkIndent(i, 0); err != nil {
			return err
		}
		switch first := ln.toks[0]; {
		case isName(first, "import"), isName(first, "from"):
			r.imports(ln.toks)
		case isName(first, "class"):
			h, err := r.header(ln.toks)
			if err != nil {
				return err
			}
			kind, _, _ := r.classify(h) // a base list it refuses is the class's error, kept when the class is read
			if prev, dup := r.kinds[h.name]; dup && (prev != otherClass || kind != otherClass) && r.twice[h.name] == nil {
				r.twice[h.name] = errorf(r.file, h.line, h.col, "class %s is declared twice; Python would keep only the last", h.name)
			}
			r.kinds[h.name] = kind
		}
	}
	return nil
}

func isName(t token, s string) bool { return t.kind == tName && t.text == s }
func isOp(t token, s string) bool   { return t.kind == tOp && t.text == s }

// imports records the names an import statement binds. Statements it does
// not understand bind nothing it needs.
func (r *reader) imports(toks []token) {
	var names []token
	for _, t := range toks {
		if !isOp(t, "(") && !isOp(t, ")") {
			names = append(names, t)
		}
	}
	dotted := func(i int) (string, int) {
		var b strings.Builder
		for i < len(names) && (names[i].kind == tName || isOp(names[i], ".") || isOp(names[i], "...")) {
			if isName(names[i], "import") || isName(names[i], "as") {
				break
			}
			b.WriteString(names[i].text)
			i++
		}
		return b.String(), i
	}
	bind := func(i int, full, local string) int {
		if i+1 < len(names) && isName(names[i], "as") && names[i+1].kind == tName {
			local = names[i+1].text
			i += 2
		}
		r.aliases[local] = full
		return i
	}
	if isName(names[0], "import") {
		for i := 1; i < len(names); i++ {
			mod, j := dotted(i)
			if mod == "" {
				return
			}
			local := strings.Split(mod, ".")[0]
			if j < len(names) && isName(names[j], "as") {
				local = mod
			}
			i = bind(j, mod, local)
			if i < len(names) && !isOp(names[i], ",") {
				return
			}
		}
		return
	}
	mod, i := dotted(1)
	if i >= len(names) || !isName(names[i], "import") {
		return
	}
	for i++; i < len(names); i++ {
		if names[i].kind != tName {
			return
		}
		name := names[i].text
		i = bind(i+1, mod+"."+name, name)
		if i < len(names) && !isOp(names[i], ",") {
			return
		}
	}
}

// qualify resolves the first part of a dotted name through the imports.
func (r *reader) qualify(name string) string {
	first, rest, dotted := strings.Cut(name, ".")
	full, ok := r.aliases[first]
	if !ok {
		return name
	}
	if dotted {
		return full + "." + rest
	}
	return full
}

// isDSPy reports whether a dotted name refers to dspy's object obj
// (dspy.InputField, dspy.signatures.field.InputField, an imported
// InputField).
func (r *reader) isDSPy(name, obj string) bool {
	q := r.qualify(name)
	return q == "dspy."+obj || strings.HasPrefix(q, "dspy.") && strings.HasSuffix(q, "."+obj)
}

func (r *reader) isPydantic(name, obj string) bool {
	q := r.qualify(name)
	return q == "pydantic."+obj || strings.HasPrefix(q, "pydantic.") && strings.HasSuffix(q, "."+obj)
}

type classHeader struct {
	name      string
	line, col int
	bases     []*expr
	// body holds the tokens after the colon of a one-line class.
	body []token
}

// header parses "class Name(Base, ...):".
func (r *reader) header(toks []token) (classHeader, error) {
	kw := toks[0]
	if len(toks) < 2 || toks[1].kind != tName {
		return classHeader{}, errorf(r.file, kw.line, kw.col, "expected a class name")
	}
	h := classHeader{name: toks[1].text, line: kw.line, col: kw.col}
	rest := toks[2:]
	if len(rest) > 0 && isOp(rest[0], "(") {
		p := newExprParser(r.file, rest)
		args, err := p.callArgs()
		if err != nil {
			return classHeader{}, err
		}
		for _, a := range args {
			if a.name != "" {
				continue // metaclass= and the like: judged by classify
			}
			e, err := parseAll(r.file, a.toks)
			if err != nil {
				return classHeader{}, err
			}
			h.bases = append(h.bases, e)
		}
		rest = rest[p.i:]
	}
	if len(rest) == 0 || !isOp(rest[0], ":") {
		return classHeader{}, errorf(r.file, kw.line, kw.col, "class %s: expected \":\" after the bases", h.name)
	}
	h.body = rest[1:]
	return h, nil
}

// classify says whether a class is a Signature, a model or neither, and
// names its same-file base class if it has one. The kind is set also when
// the bases are refused.
func (r *reader) classify(h classHeader) (classKind, string, error) {
	kind, base := otherClass, ""
	for _, b := range h.bases {
		var k classKind
		var local string
		if b.kind == eName {
			switch {
			case r.isDSPy(b.text, "Signature"):
				k = signatureClass
			case r.isPydantic(b.text, "BaseModel"):
				k = modelClass
			case r.kinds[b.text] != otherClass:
				k, local = r.kinds[b.text], b.text
			}
		}
		if k == otherClass {
			continue
		}
		if len(h.bases) > 1 {
			return k, local, errorf(r.file, h.line, h.col, "class %s: more than one base class is not supported", h.name)
		}
		kind, base = k, local
	}
	return kind, base, nil
}
