package pysource

import (
	"errors"
	"strconv"
	"strings"

	"github.com/qaqueue/qaqueue/program"
)

// read walks the top-level statements and reads every Signature and model
// class; everything else is skipped with its indented block. A class it
// cannot serve is refused on its own (File.refuse); only a header it
// cannot parse fails the file.
func (r *reader) read() error {
	r.out = &File{Name: r.file, refused: map[string]refusal{}}
	decorated := false
	for i := 0; i < len(r.lines); {
		ln := r.lines[i]
		end := r.block(i)
		first := ln.toks[0]
		switch {
		case isOp(first, "@"):
			decorated = true
			i = end
			continue
		case isName(first, "class"):
			if err := r.class(i, end, decorated); err != nil {
				return err
			}
		default:
			r.stringSignature(ln.toks)
		}
		decorated = false
		i = end
	}
	return nil
}

// class reads the class whose header is line i and whose body runs to end.
// The error it returns is the header's; what the class declares that
// cannot be served refuses the class alone.
func (r *reader) class(i, end int, decorated bool) error {
	h, err := r.header(r.lines[i].toks)
	if err != nil {
		return err
	}
	kind, base, err := r.classify(h)
	if kind == otherClass {
		return nil
	}
	if twice := r.twice[h.name]; twice != nil {
		err = twice
	}
	if err == nil {
		err = r.classBody(h, kind, base, i+1, end, decorated)
	}
	if err != nil {
		r.out.refuse(h.name, kind, err)
	}
	return nil
}

// classBody reads the body of a Signature or model class, lines from to
// end, and adds the class to the file.
func (r *reader) classBody(h classHeader, kind classKind, base string, from, end int, decorated bool) error {
	if decorated {
		return errorf(r.file, h.line, h.col, "class %s: decorators on a Signature or model class are not supported", h.name)
	}
	body, err := r.body(h, from, end)
	if err != nil {
		return err
	}
	if kind == signatureClass {
		return r.signature(h, base, body)
	}
	return r.model(h, base, body)
}

// stmt is one statement of a class body, with the decorators before it.
type stmt struct {
	toks       []token
	decorators []*expr
	// compound is set for def, class and other statements with a block.
	compound bool
}

// body splits a class body into statements; the blocks of methods and
// other compound statements are skipped.
func (r *reader) body(h classHeader, from, to int) ([]stmt, error) {
	if len(h.body) > 0 {
		return []stmt{{toks: h.body}}, nil
	}
	if from >= to {
		return nil, errorf(r.file, h.line, h.col, "class %s: expected an indented body", h.name)
	}
	indent := r.lines[from].indent
	var out []stmt
	var decorators []*expr
	for i := from; i < to; {
		ln := r.lines[i]
		if err := r.checkIndent(i, indent); err != nil {
			return nil, err
		}
		next := r.block(i)
		if isOp(ln.toks[0], "@") {
			d, err := parseAll(r.file, ln.toks[1:])
			if err != nil {
				return nil, err
			}
			decorators = append(decorators, d)
			i = next
			continue
		}
		out = append(out, stmt{toks: ln.toks, decorators: decorators, compound: isCompound(ln.toks)})
		decorators = nil
		i = next
	}
	return out, nil
}

// isCompound reports whether a statement opens a block, also when its
// body is on the same line ("def f(self): return 1").
func isCompound(toks []token) bool {
	switch toks[0].text {
	case "def", "async", "class", "if", "for", "while", "with", "try":
		return toks[0].kind == tName
	}
	return endsWithColon(toks)
}

func endsWithColon(toks []token) bool {
	return len(toks) > 0 && isOp(toks[len(toks)-1], ":")
}

// docstring returns the class docstring: a first statement that is only a
// string literal.
func (r *reader) docstring(body []stmt) (string, bool, []stmt, error) {
	if len(body) == 0 || body[0].toks[0].kind != tString {
		return "", false, body, nil
	}
	e, err := parseAll(r.file, body[0].toks)
	if err != nil || e.kind != eString {
		return "", false, body, nil
	}
	if e.fstring || e.bytes {
		return "", false, nil, errorf(r.file, e.line, e.col, "an f-string or bytes docstring is not a docstring in Python; write a plain string")
	}
	return e.text, true, body[1:], nil
}

// annotated splits "name: annotation = value" into its parts; value is
// nil when there is none. ok is false for any other statement.
func annotated(toks []token) (name token, annot, value []token, ok bool) {
	if len(toks) < 3 || toks[0].kind != tName || !isOp(toks[1], ":") {
		return token{}, nil, nil, false
	}
	eq := len(toks)
	for i := 2; i < len(toks); i++ {
		if isOp(toks[i], "=") {
			eq = i
			break
		}
	}
	annot = toks[2:eq]
	if eq < len(toks) {
		value = toks[eq+1:]
	}
	return toks[0], annot, value, len(annot) > 0
}

// assigned splits "name = value"; ok is false for any other statement.
func assigned(toks []token) (name token, value []token, ok bool) {
	if len(toks) < 3 || toks[0].kind != tName || !isOp(toks[1], "=") {
		return token{}, nil, false
	}
	return toks[0], toks[2:], true
}

// skippable reports whether a statement has no effect on the fields:
// pass, ..., and bare string literals (attribute docstrings).
func skippable(toks []token) bool {
	if len(toks) == 1 && (isName(toks[0], "pass") || isOp(toks[0], "...")) {
		return true
	}
	for _, t := range toks {
		if t.kind != tString {
			return false
		}
	}
	return true
}

func (r *reader) signature(h classHeader, base string, body []stmt) error {
	s := &SignatureClass{Name: h.name, Line: h.line, Base: base, file: r.file, owner: r.out}
	doc, hasDoc, body, err := r.docstring(body)
	if err != nil {
		return err
	}
	if hasDoc && doc == "" {
		return errorf(r.file, h.line, h.col, "class %s: an empty docstring makes DSPy send no instructions; write them or remove the docstring", h.name)
	}
	s.Instructions = doc
	if base != "" {
		b, err := r.out.Signature(base)
		if errors.Is(err, ErrNotDeclared) {
			return errorf(r.file, h.line, h.col, "class %s: base class %s must be declared before it", h.name, base)
		}
		if err != nil {
			return err // the base's own error: the class cannot be served without it
		}
		s.Inputs = append(s.Inputs, b.Inputs...)
		s.Outputs = append(s.Outputs, b.Outputs...)
		if !hasDoc {
			// DSPy copies a base's non-empty __doc__, which a base without
			// a docstring got set to its own default instructions.
			s.Instructions = b.Instructions
			if s.Instructions == "" {
				bs, err := program.NewSignature("", namesOnly(b.Inputs), namesOnly(b.Outputs))
				if err != nil {
					return errorf(r.file, h.line, h.col, "class %s: base %s: %v", h.name, base, err)
				}
				s.Instructions = bs.Instructions()
			}
		}
	}
	own := map[string]bool{}
	for _, st := range body {
		f, isInput, isField, err := r.signatureField(h.name, st)
		if err != nil {
			return err
		}
		if !isField {
			continue
		}
		if own[f.Name] {
			return errorf(r.file, f.Line, f.Col, "class %s: field %s is declared twice", s.Name, f.Name)
		}
		own[f.Name] = true
		if err := s.add(f, isInput); err != nil {
			return err
		}
	}
	r.out.Signatures = append(r.out.Signatures, s)
	return nil
}

func namesOnly(fields []Field) []program.Field {
	out := make([]program.Field, len(fields))
	for i, f := range fields {
		out[i] = program.Field{Name: f.Name}
	}
	return out
}

// add appends a field; a field redefining a base's keeps the base's place,
// as pydantic does.
func (s *SignatureClass) add(f Field, input bool) error {
	for _, group := range []*[]Field{&s.Inputs, &s.Outputs} {
		for i, g := range *group {
			if g.Name != f.Name {
				continue
			}
			if (group == &s.Inputs) != input {
				return errorf(s.file, f.Line, f.Col, "class %s: field %s changes from input to output or back; DSPy would move it", s.Name, f.Name)
			}
			(*group)[i] = f
			return nil
		}
	}
	if input {
		s.Inputs = append(s.Inputs, f)
	} else {
		s.Outputs = append(s.Outputs, f)
	}
	return nil
}

// signatureField reads one statement of a Signature body. isField is false
// for statements that declare no field (methods, constants, pass).
func (r *reader) signatureField(class string, st stmt) (f Field, isInput, isField bool, err error) {
	if st.compound || len(st.decorators) > 0 || skippable(st.toks) {
		return Field{}, false, false, nil
	}
	name, annot, value, ok := annotated(st.toks)
	if !ok {
		var plain bool
		name, value, plain = assigned(st.toks)
		if !plain {
			t := st.toks[0]
			return Field{}, false, false, errorf(r.file, t.line, t.col, "class %s: unsupported statement in a Signature body", class)
		}
	}
	f = Field{Name: name.text, Line: name.line, Col: name.col}
	var call *expr
	if value != nil {
		e, err := parseAll(r.file, value)
		if err != nil {
			return Field{}, false, false, err
		}
		if e.kind == eCall && e.head.kind == eName &&
			(r.isDSPy(e.head.text, "InputField") || r.isDSPy(e.head.text, "OutputField")) {
			call = e
		}
	}
	if call == nil {
		if annot == nil {
			return Field{}, false, false, nil // a class attribute, which DSPy ignores
		}
		return Field{}, false, false, errorf(r.file, name.line, name.col,
			"class %s: field %s must be declared with dspy.InputField or dspy.OutputField", class, name.text)
	}
	if annot != nil {
		f.Type, err = r.annotation(annot)
		if err != nil {
			return Field{}, false, false, err
		}
	}
	if err := r.dspyFieldArgs(&f, call); err != nil {
		return Field{}, false, false, err
	}
	return f, r.isDSPy(call.head.text, "InputField"), true, nil
}

// constraintArgs are pydantic's constraint keywords: recorded, never
// applied here.
var constraintArgs = map[string]bool{
	"gt": true, "ge": true, "lt": true, "le": true, "multiple_of": true, "allow_inf_nan": true,
	"min_length": true, "max_length": true, "pattern": true,
}

// dspyFieldArgs reads the keywords of dspy.InputField/OutputField. format=
// and parser= are deprecated in DSPy 3 and have no effect, so they are
// skipped unread; other pydantic keywords would change validation or the
// schema, so they are refused.
func (r *reader) dspyFieldArgs(f *Field, call *expr) error {
	fn := call.head.text
	var description *string
	hasDesc := false
	for _, a := range call.args {
		switch {
		case a.name == "":
			return errorf(r.file, a.line, a.col, "field %s: %s takes keyword arguments only", f.Name, fn)
		case a.name == "format" || a.name == "parser":
			continue
		case a.name == "desc" || a.name == "prefix" || a.name == "description":
			s, err := r.stringArg(f.Name, a)
			if err != nil {
				return err
			}
			switch a.name {
			case "desc":
				f.Desc, hasDesc = s, true
			case "prefix":
				f.Prefix = s
			default:
				description = &s
			}
		case constraintArgs[a.name]:
			c, err := r.constraint(f.Name, a)
			if err != nil {
				return err
			}
			f.Constraints = append(f.Constraints, c)
		default:
			return errorf(r.file, a.line, a.col, "field %s: %s(%s=...) is not supported", f.Name, fn, a.name)
		}
	}
	if !hasDesc && description != nil {
		f.Desc = *description
	}
	return nil
}

// stringArg reads a keyword argument that must be a string literal.
func (r *reader) stringArg(field string, a arg) (string, error) {
	e, err := parseAll(r.file, a.toks)
	if err != nil {
		return "", err
	}
	switch {
	case e.kind == eString && e.fstring:
		return "", errorf(r.file, e.line, e.col, "field %s: %s= is an f-string, computed when Python runs; write a plain string", field, a.name)
	case e.kind != eString || e.bytes:
		return "", errorf(r.file, e.line, e.col, "field %s: %s= must be a string literal", field, a.name)
	}
	return e.text, nil
}

func (r *reader) constraint(field string, a arg) (Constraint, error) {
	e, err := parseAll(r.file, a.toks)
	if err != nil {
		return Constraint{}, err
	}
	v, err := r.literal(e)
	if err != nil {
		return Constraint{}, errorf(r.file, e.line, e.col, "field %s: %s=: %v", field, a.name, err.(*Error).Msg)
	}
	return Constraint{Name: a.name, Value: v}, nil
}

// literal evaluates a Python literal: strings, numbers, True, False, None,
// and lists, tuples and string-keyed dicts of literals.
func (r *reader) literal(e *expr) (any, error) {
	switch e.kind {
	case eString:
		if e.fstring || e.bytes {
			return nil, errorf(r.file, e.line, e.col, "only plain string literals are supported")
		}
		return e.text, nil
	case eNumber:
		text := strings.ReplaceAll(e.text, "_", "")
		if i, err := strconv.ParseInt(text, 0, 64); err == nil {
			return i, nil
		}
		if f, err := strconv.ParseFloat(text, 64); err == nil && !strings.ContainsAny(text, "xXoObB") {
			return f, nil
		}
		return nil, errorf(r.file, e.line, e.col, "unsupported number %s", e.text)
	case eName:
		switch e.text {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		}
	case eList, eTuple:
		out := make([]any, 0, len(e.items))
		for _, it := range e.items {
			v, err := r.literal(it)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case eDict:
		out := make(map[string]any, len(e.items))
		for i, k := range e.keys {
			if k.kind != eString || k.fstring || k.bytes {
				return nil, errorf(r.file, k.line, k.col, "only string keys are supported in a dict literal")
			}
			v, err := r.literal(e.items[i])
			if err != nil {
				return nil, err
			}
			out[k.text] = v
		}
		return out, nil
	}
	return nil, errorf(r.file, e.line, e.col, "expected a literal value")
}

// stringSignature reads a module-level NAME = dspy.Signature("a -> b",
// "instructions"), DSPy's string form bound to a name. Other assignments
// are skipped; one that calls dspy.Signature some other way is refused
// under its name, so the name is not silently missing.
func (r *reader) stringSignature(toks []token) {
	name, value, ok := assigned(toks)
	if !ok || !r.mentionsSignature(value) {
		return
	}
	if err := r.readStringSignature(name, value); err != nil {
		r.out.refuse(name.text, signatureClass, err)
	}
}

func (r *reader) readStringSignature(name token, value []token) error {
	_, isClass := r.kinds[name.text]
	if isClass || r.out.declared(name.text) {
		twice := errorf(r.file, name.line, name.col, "%s is declared twice; Python would keep only the last", name.text)
		if isClass && r.twice[name.text] == nil {
			r.twice[name.text] = twice // refuses the class too, when it is read
		}
		return twice
	}
	refuse := func(line, col int) error {
		return errorf(r.file, line, col, "%s: only %s = dspy.Signature(\"inputs -> outputs\", \"instructions\") is read", name.text, name.text)
	}
	e, err := parseAll(r.file, value)
	if err != nil {
		// Most likely a chain such as dspy.Signature("a -> b").with_instructions(...).
		return refuse(value[0].line, value[0].col)
	}
	if e.kind != eCall || e.head.kind != eName || !r.isDSPy(e.head.text, "Signature") {
		return nil // it names the class ({"qa": dspy.Signature}) without declaring one
	}
	var texts []string
	for i, a := range e.args {
		if a.name != "" && !(a.name == "instructions" && i == 1) && !(a.name == "signature" && i == 0) {
			return refuse(a.line, a.col)
		}
		s, err := r.stringArg(name.text, a)
		if err != nil {
			return err
		}
		texts = append(texts, s)
	}
	if len(texts) == 0 || len(texts) > 2 {
		return refuse(e.line, e.col)
	}
	texts = append(texts, "")
	sig, err := program.ParseSignature(texts[0], texts[1])
	if err != nil {
		return errorf(r.file, e.line, e.col, "%s: %v", name.text, err)
	}
	s := &SignatureClass{Name: name.text, Line: name.line, Instructions: texts[1], file: r.file, owner: r.out}
	for _, f := range sig.Inputs() {
		s.Inputs = append(s.Inputs, Field{Name: f.Name, Line: e.line, Col: e.col, Type: f.Type})
	}
	for _, f := range sig.Outputs() {
		s.Outputs = append(s.Outputs, Field{Name: f.Name, Line: e.line, Col: e.col, Type: f.Type})
	}
	r.out.Signatures = append(r.out.Signatures, s)
	return nil
}

// mentionsSignature reports whether tokens name dspy's Signature.
func (r *reader) mentionsSignature(toks []token) bool {
	for i, t := range toks {
		if t.kind != tName || t.text != "Signature" {
			continue
		}
		name := t.text
		if i >= 2 && isOp(toks[i-1], ".") && toks[i-2].kind == tName {
			name = toks[i-2].text + "." + name
		}
		if r.isDSPy(name, "Signature") {
			return true
		}
	}
	return false
}
