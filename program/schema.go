package program

import (
	"slices"
	"strings"
)

// schemaGen builds a pydantic JSON schema: models become {"$ref"} into defs
// (pydantic's GenerateJsonSchema, validation mode).
type schemaGen struct {
	defs map[string]*Map
	// kept are the models pydantic keeps as core-schema definitions (used
	// more than once): a reference to one is only a $ref, and its schema is
	// generated in its turn, before the main schema.
	kept map[*Model]bool
	// forbidExtra is the model configured with extra="forbid"
	// (DSPyProgramOutputs), nil for none.
	forbidExtra *Model
}

const defsPrefix = "#/$defs/"

// typeAdapterSchema is pydantic's TypeAdapter(t).json_schema() (for a
// model, model_json_schema()): a top-level model referenced once is
// inlined, the models it uses go to "$defs", and keys are sorted except a
// model's properties.
func typeAdapterSchema(t Type) *Map { return typeSchema(t, nil) }

// typeSchema is typeAdapterSchema with forbid, if set, configured with
// extra="forbid".
func typeSchema(t Type, forbid *Model) *Map {
	g := &schemaGen{defs: map[string]*Map{}, kept: map[*Model]bool{}, forbidExtra: forbid}
	kept := keptModels(t)
	for _, m := range kept {
		g.kept[m] = true
	}
	for _, m := range kept {
		g.defs[m.Name] = g.modelSchema(m)
	}
	s := g.schema(t)
	if ref, ok := s.Get("$ref"); ok && s.Len() == 1 {
		if name := strings.TrimPrefix(ref.(string), defsPrefix); g.refCounts(s)[name] == 1 {
			s = copyValue(g.defs[name]).(*Map)
		}
	}
	if used := g.reachable(s); len(used) > 0 {
		defs := NewMap()
		for _, name := range used {
			defs.Set(name, g.defs[name])
		}
		s.Set("$defs", defs)
	}
	return pydanticSort(s, "").(*Map)
}

// schema is the schema of t, unsorted.
func (g *schemaGen) schema(t Type) *Map {
	m := NewMap()
	if t.Model != nil {
		if _, done := g.defs[t.Model.Name]; !done && !g.kept[t.Model] {
			g.defs[t.Model.Name] = nil // a recursive reference finds it
			g.defs[t.Model.Name] = g.modelSchema(t.Model)
		}
		m.Set("$ref", defsPrefix+t.Model.Name)
		return m
	}
	switch t.name() {
	case "str":
		m.Set("type", "string")
	case "int":
		m.Set("type", "integer")
	case "float":
		m.Set("type", "number")
	case "bool":
		m.Set("type", "boolean")
	case "NoneType":
		m.Set("type", "null")
	case "Any":
	case "list", "set", "frozenset":
		items := NewMap()
		if len(t.Args) > 0 {
			items = g.schema(t.Args[0])
		}
		m.Set("items", items)
		m.Set("type", "array")
		if t.name() != "list" {
			m.Set("uniqueItems", true)
		}
	case "tuple":
		switch {
		case len(t.Args) == 0:
			m.Set("items", NewMap())
		case len(t.Args) == 2 && t.Args[1].Name == "...":
			m.Set("items", g.schema(t.Args[0]))
		default:
			prefix := make([]any, len(t.Args))
			for i, a := range t.Args {
				prefix[i] = g.schema(a)
			}
			m.Set("maxItems", int64(len(t.Args)))
			m.Set("minItems", int64(len(t.Args)))
			m.Set("prefixItems", prefix)
		}
		m.Set("type", "array")
	case "dict":
		if len(t.Args) == 2 && t.Args[1].Name != "Any" {
			m.Set("additionalProperties", g.schema(t.Args[1]))
		} else {
			m.Set("additionalProperties", true)
		}
		m.Set("type", "object")
	case "Literal":
		vals := make([]any, len(t.Values))
		copy(vals, t.Values)
		if len(vals) == 1 {
			m.Set("const", vals[0])
		} else {
			m.Set("enum", vals)
		}
		if kind := literalSchemaType(t.Values); kind != "" {
			m.Set("type", kind)
		}
	case "Union", "UnionType":
		anyOf := make([]any, len(t.Args))
		for i, a := range t.Args {
			anyOf[i] = g.schema(a)
		}
		m.Set("anyOf", anyOf)
	}
	return m
}

// keptModels lists the models t uses more than once, counting as
// pydantic's gather_schemas_for_cleaning does (a model's fields are visited
// at its first use only), in the order first met: the definitions pydantic
// keeps, where a model used once is inlined. Their order decides which
// $ref's redundant keys handle_ref_overrides can see and drop.
func keptModels(t Type) []*Model {
	count := map[*Model]int{}
	var order []*Model
	var walk func(Type)
	walk = func(t Type) {
		if m := t.Model; m != nil {
			count[m]++
			if count[m] == 1 {
				order = append(order, m)
				for _, f := range m.Fields {
					walk(f.Type)
				}
			}
			return
		}
		for _, a := range t.Args {
			walk(a)
		}
	}
	walk(t)
	var kept []*Model
	for _, m := range order {
		if count[m] > 1 {
			kept = append(kept, m)
		}
	}
	return kept
}

// modelSchema is a model's object schema (model_schema and
// _update_class_schema): properties in field order, required names,
// title, type, the docstring as description.
func (g *schemaGen) modelSchema(mod *Model) *Map {
	props := NewMap()
	var required []any
	for _, f := range mod.Fields {
		props.Set(f.Name, g.fieldSchema(f))
		if f.Required() {
			required = append(required, f.Name)
		}
	}
	s := NewMap()
	s.Set("type", "object")
	s.Set("properties", props)
	if len(required) > 0 {
		s.Set("required", required)
	}
	s.Set("title", mod.Name)
	if mod.Doc != "" {
		s.Set("description", cleandoc(mod.Doc))
	}
	if mod == g.forbidExtra {
		s.Set("additionalProperties", false)
	}
	return s
}

// fieldSchema is one property: the type's schema with the default, the
// description and (unless the type is a model or an optional model) a
// title from the name; sibling keys a $ref's model already has go
// (handle_ref_overrides).
func (g *schemaGen) fieldSchema(f ModelField) *Map {
	s := g.schema(f.Type)
	constrainSchema(s, f.Type, f.Constraints)
	if f.HasDefault {
		s.Set("default", toOrdered(f.Default))
	}
	if f.Desc != "" {
		s.Set("description", f.Desc)
	}
	if fieldTitled(f.Type) {
		s.Set("title", pyTitle(strings.ReplaceAll(f.Name, "_", " ")))
	}
	ref, ok := s.Get("$ref")
	if !ok {
		return s
	}
	def := g.defs[strings.TrimPrefix(ref.(string), defsPrefix)]
	out := NewMap()
	for _, k := range s.keys {
		if dv, has := def.Get(k); k != "$ref" && has && pyJSONDumps(dv) == pyJSONDumps(s.values[k]) {
			continue
		}
		out.Set(k, s.values[k])
	}
	return out
}

// fieldTitled is pydantic's field_title_should_be_set: not for a model,
// nor for Optional[M] (a nullable model), which carry their own title.
func fieldTitled(t Type) bool {
	if t.Model != nil {
		return false
	}
	if t.isUnion() && len(t.Args) == 2 {
		for i, a := range t.Args {
			if a.Name == "NoneType" && t.Args[1-i].Model != nil {
				return false
			}
		}
	}
	return true
}

// refCounts counts each $ref reachable from s, following a definition the
// first time it is referenced (pydantic's get_json_ref_counts).
func (g *schemaGen) refCounts(s *Map) map[string]int {
	counts := map[string]int{}
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case *Map:
			if ref, ok := t.Get("$ref"); ok {
				if r, isStr := ref.(string); isStr && strings.HasPrefix(r, defsPrefix) {
					name := r[len(defsPrefix):]
					counts[name]++
					if counts[name] == 1 {
						walk(g.defs[name])
					}
				}
			}
			for _, k := range t.keys {
				walk(t.values[k])
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(s)
	return counts
}

// reachable lists the definitions s uses, directly or through others
// (pydantic drops the rest).
func (g *schemaGen) reachable(s *Map) []string {
	var names []string
	for name := range g.refCounts(s) {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// pydanticSort is GenerateJsonSchema.sort: every object's keys sorted,
// except the children of "properties" and "default", which keep their
// order.
func pydanticSort(v any, parent string) any {
	switch t := v.(type) {
	case *Map:
		keys := t.Keys()
		if parent != "properties" && parent != "default" {
			slices.Sort(keys)
		}
		out := NewMap()
		for _, k := range keys {
			out.Set(k, pydanticSort(t.values[k], k))
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = pydanticSort(e, parent)
		}
		return out
	}
	return v
}

// structuredOutputSchemas are the schemas of the json_schema DSPy's
// JSONAdapter asks for: key is the pydantic model DSPyProgramOutputs (one
// required field per output, extra="forbid"), its model_json_schema() with
// DSPy's enforce_required applied, which DSPy hashes into the cache key;
// wire is key after LiteLLM's to_strict_json_schema (openai-python's
// _ensure_strict_json_schema), which reaches the provider.
func structuredOutputSchemas(sig *Signature) (key, wire *Map) {
	m := &Model{Name: "DSPyProgramOutputs"}
	for _, f := range sig.outputs {
		m.Fields = append(m.Fields, ModelField{Name: f.Name, Type: f.Type})
	}
	key = typeSchema(Type{Name: m.Name, Model: m}, m)
	enforceRequired(key)
	wire = copyValue(key).(*Map)
	return key, ensureStrict(wire, wire)
}

// enforceRequired is DSPy's enforce_required: every object schema lists
// all its properties as required and forbids others (an object without
// properties gets empty ones), through properties, array items and $defs.
func enforceRequired(s *Map) {
	if typ, _ := s.Get("type"); typ == "object" {
		if props, ok := s.Get("properties"); ok {
			pm, _ := props.(*Map)
			s.Set("required", keysAsAny(pm))
			s.Set("additionalProperties", false)
			if pm != nil {
				for _, k := range pm.keys {
					if sub, isMap := pm.values[k].(*Map); isMap {
						enforceRequired(sub)
					}
				}
			}
		} else {
			s.Set("properties", NewMap())
			s.Set("required", []any{})
			s.Set("additionalProperties", false)
		}
	}
	if typ, _ := s.Get("type"); typ == "array" {
		if items, ok := s.Get("items"); ok {
			if im, isMap := items.(*Map); isMap {
				enforceRequired(im)
			}
		}
	}
	for _, key := range []string{"$defs", "definitions"} {
		if defs, ok := s.Get(key); ok {
			if dm, isMap := defs.(*Map); isMap {
				for _, k := range dm.keys {
					if sub, isMap := dm.values[k].(*Map); isMap {
						enforceRequired(sub)
					}
				}
			}
		}
	}
}

func keysAsAny(m *Map) []any {
	out := []any{}
	if m == nil {
		return out
	}
	for _, k := range m.keys {
		out = append(out, k)
	}
	return out
}

// ensureStrict is openai-python's _ensure_strict_json_schema, which
// LiteLLM applies to DSPy's class: additionalProperties false on objects,
// every property required, through $defs, properties, items, anyOf and
// allOf; a null default dropped; a $ref with sibling keys inlined.
func ensureStrict(s *Map, root *Map) *Map {
	for _, key := range []string{"$defs", "definitions"} {
		if defs, ok := s.Get(key); ok {
			if dm, isMap := defs.(*Map); isMap {
				for _, k := range dm.keys {
					if sub, isMap := dm.values[k].(*Map); isMap {
						dm.values[k] = ensureStrict(sub, root)
					}
				}
			}
		}
	}
	if typ, _ := s.Get("type"); typ == "object" && !s.Has("additionalProperties") {
		s.Set("additionalProperties", false)
	}
	if props, ok := s.Get("properties"); ok {
		if pm, isMap := props.(*Map); isMap {
			s.Set("required", keysAsAny(pm))
			out := NewMap()
			for _, k := range pm.keys {
				sub, _ := pm.values[k].(*Map)
				if sub == nil {
					out.Set(k, pm.values[k])
					continue
				}
				out.Set(k, ensureStrict(sub, root))
			}
			s.Set("properties", out)
		}
	}
	if items, ok := s.Get("items"); ok {
		if im, isMap := items.(*Map); isMap {
			s.Set("items", ensureStrict(im, root))
		}
	}
	if anyOf, ok := s.Get("anyOf"); ok {
		if list, isList := anyOf.([]any); isList {
			s.Set("anyOf", ensureStrictEach(list, root))
		}
	}
	if allOf, ok := s.Get("allOf"); ok {
		if list, isList := allOf.([]any); isList {
			if len(list) == 1 {
				if em, isMap := list[0].(*Map); isMap {
					r := ensureStrict(em, root)
					for _, k := range r.keys {
						s.Set(k, r.values[k])
					}
				}
				s.del("allOf")
			} else {
				s.Set("allOf", ensureStrictEach(list, root))
			}
		}
	}
	if d, ok := s.Get("default"); ok && d == nil {
		s.del("default")
	}
	if ref, ok := s.Get("$ref"); ok && s.Len() > 1 {
		if resolved := resolveRef(root, ref); resolved != nil {
			// json_schema.update({**resolved, **json_schema}): the keys
			// already here keep their place and value, the model's follow.
			for _, k := range resolved.keys {
				if !s.Has(k) {
					s.Set(k, resolved.values[k])
				}
			}
			s.del("$ref")
			return ensureStrict(s, root)
		}
	}
	return s
}

// ensureStrictEach is ensureStrict on each schema of an anyOf or allOf
// list; an entry that is not a schema stays as it is.
func ensureStrictEach(list []any, root *Map) []any {
	out := make([]any, len(list))
	for i, e := range list {
		if em, isMap := e.(*Map); isMap {
			out[i] = ensureStrict(em, root)
		} else {
			out[i] = e
		}
	}
	return out
}

// resolveRef follows "#/a/b" from root.
func resolveRef(root *Map, ref any) *Map {
	r, ok := ref.(string)
	if !ok || !strings.HasPrefix(r, "#/") {
		return nil
	}
	cur := root
	for _, part := range strings.Split(r[2:], "/") {
		next, _ := cur.Get(part)
		if cur, ok = next.(*Map); !ok {
			return nil
		}
	}
	return cur
}

// del removes k, keeping the other keys' order (Python's dict.pop).
func (m *Map) del(k string) {
	if _, ok := m.values[k]; !ok {
		return
	}
	delete(m.values, k)
	m.keys = slices.DeleteFunc(m.keys, func(s string) bool { return s == k })
}
