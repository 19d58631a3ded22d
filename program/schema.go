package program

// FieldsSchema is the JSON Schema of an object holding fields as required
// properties, in order: a program's inputs or its outputs, as the registry
// shows them. Each property is pydantic's schema of the field's type (what
// DSPy's JSONAdapter shows the LM) with the field's description when it has
// one of its own.
func FieldsSchema(fields []Field) *Map {
	props := NewMap()
	required := make([]any, 0, len(fields))
	for _, f := range fields {
		s := f.Type.jsonSchema()
		if f.Desc != "" && f.Desc != "${"+f.Name+"}" {
			s.Set("description", f.Desc)
		}
		props.Set(f.Name, s)
		required = append(required, f.Name)
	}
	schema := NewMap()
	schema.Set("type", "object")
	schema.Set("properties", props)
	schema.Set("required", required)
	schema.Set("additionalProperties", false)
	return schema
}
