package pysource

import (
	"errors"
	"fmt"
	"strings"

	"github.com/qaqueue/qaqueue/program"
)

// valueDecorators are pydantic decorators that change a model's values or
// schema; a model using one cannot be served faithfully from its fields.
var valueDecorators = map[string]bool{
	"field_validator": true, "model_validator": true, "validator": true, "root_validator": true,
	"computed_field": true, "field_serializer": true, "model_serializer": true,
}

func (r *reader) model(h classHeader, base string, body []stmt) error {
	m := &ModelClass{Name: h.name, Line: h.line, Base: base}
	doc, _, body, err := r.docstring(body)
	if err != nil {
		return err
	}
	m.Docstring = doc
	if base != "" {
		b, err := r.out.Model(base)
		if errors.Is(err, ErrNotDeclared) {
			return errorf(r.file, h.line, h.col, "class %s: base class %s must be declared before it", h.name, base)
		}
		if err != nil {
			return err // the base's own error
		}
		m.Fields = append(m.Fields, b.Fields...)
	}
	own := map[string]bool{}
	for _, st := range body {
		f, isField, err := r.modelField(h.name, st)
		if err != nil {
			return err
		}
		if !isField {
			continue
		}
		if own[f.Name] {
			return errorf(r.file, f.Line, f.Col, "class %s: field %s is declared twice", h.name, f.Name)
		}
		own[f.Name] = true
		replaced := false
		for i, g := range m.Fields {
			if g.Name == f.Name {
				m.Fields[i], replaced = f, true // pydantic keeps a base field's place
			}
		}
		if !replaced {
			m.Fields = append(m.Fields, f)
		}
	}
	r.out.Models = append(r.out.Models, m)
	return nil
}

// modelField reads one statement of a model body.
func (r *reader) modelField(class string, st stmt) (Field, bool, error) {
	for _, d := range st.decorators {
		name := d
		if d.kind == eCall {
			name = d.head
		}
		if name.kind == eName && valueDecorators[lastPart(name.text)] {
			return Field{}, false, errorf(r.file, d.line, d.col, "class %s: @%s changes the model's values or schema and is not supported", class, name.text)
		}
	}
	first := st.toks[0]
	if isName(first, "class") {
		return Field{}, false, errorf(r.file, first.line, first.col, "class %s: a nested class (such as pydantic v1's Config) is not supported", class)
	}
	if st.compound || skippable(st.toks) {
		return Field{}, false, nil // methods and properties do not change the fields
	}
	if name, _, ok := assigned(st.toks); ok {
		if strings.HasPrefix(name.text, "_") {
			return Field{}, false, nil // a private attribute, not a field
		}
		if name.text == "model_config" {
			return Field{}, false, errorf(r.file, name.line, name.col, "class %s: model_config is not supported (it can change the schema)", class)
		}
		return Field{}, false, errorf(r.file, name.line, name.col, "class %s: %s without an annotation is not supported", class, name.text)
	}
	name, annot, value, ok := annotated(st.toks)
	if !ok {
		return Field{}, false, errorf(r.file, first.line, first.col, "class %s: unsupported statement in a model body", class)
	}
	if ae, err := parseAll(r.file, annot); err == nil && isClassVar(r, ae) {
		return Field{}, false, nil
	}
	f := Field{Name: name.text, Line: name.line, Col: name.col}
	var err error
	if f.Type, err = r.annotation(annot); err != nil {
		return Field{}, false, err
	}
	if value == nil {
		return f, true, nil
	}
	e, err := parseAll(r.file, value)
	if err != nil {
		return Field{}, false, err
	}
	if e.kind == eCall && e.head.kind == eName && r.isPydantic(e.head.text, "Field") {
		return f, true, r.pydanticFieldArgs(&f, e)
	}
	if f.Default, err = r.literal(e); err != nil {
		return Field{}, false, errorf(r.file, e.line, e.col, "field %s: the default must be a literal or Field(...)", f.Name)
	}
	f.HasDefault = true
	return f, true, nil
}

func lastPart(dotted string) string { return dotted[strings.LastIndex(dotted, ".")+1:] }

func isClassVar(r *reader, e *expr) bool {
	if e.kind == eSubscript {
		e = e.head
	}
	return e.kind == eName && typingName(r.qualify(e.text)) == "ClassVar"
}

// pydanticFieldArgs reads pydantic.Field(...): a default (positional or
// default=; ... means required), description=, default_factory= and
// constraints. Other keywords (alias=, title=, examples=, ...) change the
// schema or the keys and are refused.
func (r *reader) pydanticFieldArgs(f *Field, call *expr) error {
	for i, a := range call.args {
		switch {
		case a.name == "" && i > 0:
			return errorf(r.file, a.line, a.col, "field %s: Field takes one positional argument", f.Name)
		case a.name == "" || a.name == "default":
			e, err := parseAll(r.file, a.toks)
			if err != nil {
				return err
			}
			if e.kind == eEllipsis {
				continue
			}
			if f.Default, err = r.literal(e); err != nil {
				return errorf(r.file, e.line, e.col, "field %s: the default must be a literal", f.Name)
			}
			f.HasDefault = true
		case a.name == "description":
			s, err := r.stringArg(f.Name, a)
			if err != nil {
				return err
			}
			f.Desc = s
		case a.name == "default_factory":
			e, err := parseAll(r.file, a.toks)
			if err != nil {
				return err
			}
			if e.kind != eName || !(e.text == "list" || e.text == "dict" || r.isModel(e)) {
				return errorf(r.file, e.line, e.col, "field %s: default_factory must be list, dict or a model of this file", f.Name)
			}
			f.DefaultFactory = e.text
		case constraintArgs[a.name]:
			c, err := r.constraint(f.Name, a)
			if err != nil {
				return err
			}
			f.Constraints = append(f.Constraints, c)
		default:
			return errorf(r.file, a.line, a.col, "field %s: Field(%s=...) is not supported", f.Name, a.name)
		}
	}
	return nil
}

// ErrNotYetSupported marks what a later step adds: pattern= and
// allow_inf_nan= on model fields, and recursive models.
var ErrNotYetSupported = errors.New("not yet supported")

// Signature returns the class as a program.Signature, the models of the
// file its fields use built into program.Models (their fields' constraints
// included), and the signature fields' constraints kept for DSPy's
// "Constraints:" line. A model field's pattern= or allow_inf_nan=, and
// models that refer to themselves, are refused with an error naming the
// field and wrapping ErrNotYetSupported.
func (s *SignatureClass) Signature() (*program.Signature, error) {
	res := &modelResolver{file: s.owner, name: s.file, built: map[string]*program.Model{}, building: map[string]bool{}}
	convert := func(fields []Field) ([]program.Field, error) {
		out := make([]program.Field, len(fields))
		for i, f := range fields {
			t, err := res.resolve(f.Type)
			if err != nil {
				return nil, err
			}
			out[i] = program.Field{Name: f.Name, Type: t, Desc: f.Desc, Prefix: f.Prefix}
			for _, c := range f.Constraints {
				out[i].Constraints = append(out[i].Constraints, program.Constraint{Name: c.Name, Value: c.Value})
			}
		}
		return out, nil
	}
	ins, err := convert(s.Inputs)
	if err != nil {
		return nil, err
	}
	outs, err := convert(s.Outputs)
	if err != nil {
		return nil, err
	}
	sig, err := program.NewSignature(s.Instructions, ins, outs)
	if err != nil {
		return nil, fmt.Errorf("build signature %s: %w", s.Name, err)
	}
	return sig, nil
}

// modelResolver turns the model names in types into program.Models, each
// built once per signature.
type modelResolver struct {
	file     *File
	name     string
	built    map[string]*program.Model
	building map[string]bool
}

// resolve returns t with every model reference's Model set.
func (r *modelResolver) resolve(t program.Type) (program.Type, error) {
	if !builtinTypes[t.Name] {
		m, err := r.model(t.Name)
		if err != nil {
			return program.Type{}, err
		}
		t.Model = m
	}
	if len(t.Args) > 0 {
		args := make([]program.Type, len(t.Args))
		for i, a := range t.Args {
			var err error
			if args[i], err = r.resolve(a); err != nil {
				return program.Type{}, err
			}
		}
		t.Args = args
	}
	return t, nil
}

func (r *modelResolver) model(name string) (*program.Model, error) {
	if m, ok := r.built[name]; ok {
		return m, nil
	}
	var mc *ModelClass
	err := ErrNotDeclared
	if r.file != nil {
		mc, err = r.file.Model(name)
	}
	if errors.Is(err, ErrNotDeclared) {
		return nil, &Error{File: r.name, Line: 1, Col: 1, Msg: fmt.Sprintf("model %s is not declared in this file", name)}
	}
	if err != nil {
		return nil, err // the model's own error, kept when the file was read
	}
	if r.building[name] {
		return nil, &Error{File: r.name, Line: mc.Line, Col: 1, Msg: fmt.Sprintf(
			"class %s: a model that refers to itself: %v", name, ErrNotYetSupported), Err: ErrNotYetSupported}
	}
	r.building[name] = true
	defer delete(r.building, name)
	m := &program.Model{Name: mc.Name, Doc: mc.Docstring}
	for _, f := range mc.Fields {
		t, err := r.resolve(f.Type)
		if err != nil {
			return nil, err
		}
		mf := program.ModelField{Name: f.Name, Type: t, Desc: f.Desc, Default: f.Default, HasDefault: f.HasDefault}
		for _, c := range f.Constraints {
			if c.Name == "pattern" || c.Name == "allow_inf_nan" {
				return nil, &Error{File: r.name, Line: f.Line, Col: f.Col, Msg: fmt.Sprintf(
					"class %s: field %s: constraint %s=: %v", mc.Name, f.Name, c.Name, ErrNotYetSupported), Err: ErrNotYetSupported}
			}
			mf.Constraints = append(mf.Constraints, program.Constraint{Name: c.Name, Value: c.Value})
		}
		if err := program.CheckConstraints(t, mf.Constraints); err != nil {
			return nil, &Error{File: r.name, Line: f.Line, Col: f.Col, Msg: fmt.Sprintf("class %s: field %s: %v", mc.Name, f.Name, err)}
		}
		switch f.DefaultFactory {
		case "":
		case "list", "dict":
			mf.DefaultFactory = f.DefaultFactory
		default:
			mf.DefaultFactory = "model"
			if fm, err := r.model(f.DefaultFactory); err != nil {
				return nil, err
			} else if t.Model != fm {
				return nil, &Error{File: r.name, Line: f.Line, Col: f.Col, Msg: fmt.Sprintf(
					"class %s: field %s: default_factory=%s must be the field's own model", mc.Name, f.Name, f.DefaultFactory)}
			}
		}
		m.Fields = append(m.Fields, mf)
	}
	r.built[name] = m
	return m, nil
}
