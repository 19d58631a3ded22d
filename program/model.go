package program

import "encoding/json"

// Model is a pydantic BaseModel class as a signature uses it: its fields in
// pydantic's order (a base class's first). A Type whose Model is set names
// it; program/pysource builds them from a user's source.
type Model struct {
	// Name is the class name: the schema's title and $defs key, and the
	// type name DSPy prints.
	Name string
	// Doc is the class docstring as written, "" for none; its
	// inspect.cleandoc is the schema's description.
	Doc string
	// Fields are the model's fields in order.
	Fields []ModelField
}

// ModelField is one annotated field of a model.
type ModelField struct {
	Name string
	Type Type
	// Desc is Field(description=...), "" when not given.
	Desc string
	// Default is the field's default when HasDefault is set: string, int64,
	// float64, bool, nil, []any, *Map or map[string]any.
	Default    any
	HasDefault bool
	// DefaultFactory is "list", "dict" or "model" (the field's own model
	// type, built from its defaults), "" for none. A factory's value is not
	// in the schema, as in pydantic.
	DefaultFactory string
	// Constraints are the field's pydantic constraints (see
	// CheckConstraints for those that apply).
	Constraints []Constraint
}

// Required reports whether pydantic requires the field: no default and no
// default factory.
func (f ModelField) Required() bool { return !f.HasDefault && f.DefaultFactory == "" }

// defaultValue is the value a missing field takes.
func (f ModelField) defaultValue() (any, error) {
	switch f.DefaultFactory {
	case "list":
		return []any{}, nil
	case "dict":
		return NewMap(), nil
	case "model":
		if m := f.Type.model(); m != nil {
			return validateModel(NewMap(), m)
		}
		return NewMap(), nil
	}
	return copyValue(toOrdered(f.Default)), nil
}

// IsModel reports whether t names a pydantic model.
func (t Type) IsModel() bool { return t.Model != nil }

// model is the model t names, or the model of Optional[M] (a default
// factory's class).
func (t Type) model() *Model {
	if t.Model != nil {
		return t.Model
	}
	for _, a := range t.Args {
		if a.Model != nil && t.isUnion() {
			return a.Model
		}
	}
	return nil
}

// hasModel reports whether t or any type argument names a model.
func (t Type) hasModel() bool {
	if t.Model != nil {
		return true
	}
	for _, a := range t.Args {
		if a.hasModel() {
			return true
		}
	}
	return false
}

// copyValue deep-copies a decoded value so a default is never shared
// between results.
func copyValue(v any) any {
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = copyValue(e)
		}
		return out
	case *Map:
		out := NewMap()
		for _, k := range t.keys {
			out.Set(k, copyValue(t.values[k]))
		}
		return out
	}
	return v
}

// validateModel is pydantic's lax validation of a model from a dict: each
// field in order from its key (extra keys ignored), else its default, else
// a "missing" error; every field's errors are collected. The result holds
// the fields in model order, as model_dump(mode="json") gives them.
func validateModel(v any, m *Model) (any, error) {
	in, ok := v.(*Map)
	if !ok {
		return nil, invalid("model_type", "Input should be a valid dictionary or instance of "+m.Name, v)
	}
	out := NewMap()
	errs := &validationError{}
	for _, f := range m.Fields {
		fv, present := in.Get(f.Name)
		if !present {
			if f.Required() {
				errs.lines = append(errs.lines, lineError{loc: []locPart{{key: f.Name}}, kind: "missing", msg: "Field required", input: in, want: f.Type.String()})
				continue
			}
			d, err := f.defaultValue()
			if err != nil {
				return nil, err
			}
			out.Set(f.Name, d)
			continue
		}
		r, err := validate(fv, f.Type)
		if len(f.Constraints) > 0 {
			if long := tooLong(fv, f.Type, f.Constraints); long != nil {
				err = long
			} else if err == nil {
				err = applyConstraints(r, fv, f.Type, f.Constraints)
			}
		}
		if err != nil {
			if !errs.absorb(err, locPart{key: f.Name}) {
				return nil, err
			}
			continue
		}
		out.Set(f.Name, r)
	}
	if len(errs.lines) > 0 {
		return nil, errs
	}
	return out, nil
}

// JSONSchema is pydantic's TypeAdapter(t).json_schema() as compact JSON,
// keys in pydantic's order: the schema of an input or output for clients
// (a model's $defs included).
func (t Type) JSONSchema() json.RawMessage { return pyJSONCompact(t.jsonSchema()) }
