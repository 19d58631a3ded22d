package program

// FieldsSchema is the JSON Schema of an object holding fields as required
// properties, in order: a program's inputs or its outputs, as the registry
// shows them. It is pydantic's model_json_schema() of a model named title
// with those fields and extra="forbid" (DSPy builds DSPyProgramOutputs so),
// each property with the field's description when it has one of its own:
// the models the fields use are under the root's "$defs", where their
// "$ref"s point.
func FieldsSchema(title string, fields []Field) *Map {
	m := &Model{Name: title}
	for _, f := range fields {
		desc := f.Desc
		if desc == "${"+f.Name+"}" { // DSPy's placeholder: no description of its own
			desc = ""
		}
		m.Fields = append(m.Fields, ModelField{Name: f.Name, Type: f.Type, Desc: desc})
	}
	return typeSchema(Type{Name: title, Model: m}, m)
}
