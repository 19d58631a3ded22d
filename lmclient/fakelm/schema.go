package fakelm

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
)

// Bounds on the values generated from a schema, so that a hostile prompt
// (a model that contains itself, a thousand properties) costs little.
const (
	maxSchemaDepth = 8
	maxSchemaNodes = 2000
	defaultItems   = 2
	maxItems       = 5
)

// valueGen writes plausible JSON values of a JSON schema, as pydantic's
// model_json_schema and DSPy's type notes describe them.
type valueGen struct {
	a      answerer
	defs   map[string]json.RawMessage // the root's $defs, for $ref
	budget int
	// item is the position of the list item being written, so that the
	// objects of a list differ (their text takes the item-th keyword).
	item int
	// nodes caches decoded schemas by their first byte's address: a model
	// used a thousand times is decoded once.
	nodes map[*byte]*schemaNode
}

// newValueGen returns a generator for one answer; root is the schema whose
// $defs the answer's $refs name (nil when each field's schema brings its own).
func newValueGen(a answerer, root json.RawMessage) *valueGen {
	g := &valueGen{a: a, budget: maxSchemaNodes, nodes: map[*byte]*schemaNode{}}
	var r struct {
		Defs map[string]json.RawMessage `json:"$defs"`
	}
	if json.Unmarshal(root, &r) == nil {
		g.defs = r.Defs
	}
	return g
}

// schemaNode is the part of a JSON schema the generator reads.
type schemaNode struct {
	Ref                  string                     `json:"$ref"`
	Type                 json.RawMessage            `json:"type"`
	Enum                 []json.RawMessage          `json:"enum"`
	Const                json.RawMessage            `json:"const"`
	AnyOf                []json.RawMessage          `json:"anyOf"`
	OneOf                []json.RawMessage          `json:"oneOf"`
	AllOf                []json.RawMessage          `json:"allOf"`
	Properties           json.RawMessage            `json:"properties"`
	Required             []string                   `json:"required"`
	AdditionalProperties json.RawMessage            `json:"additionalProperties"`
	Items                json.RawMessage            `json:"items"`
	PrefixItems          []json.RawMessage          `json:"prefixItems"`
	MinItems             *int                       `json:"minItems"`
	MaxItems             *int                       `json:"maxItems"`
	Minimum              *float64                   `json:"minimum"`
	Maximum              *float64                   `json:"maximum"`
	ExclusiveMinimum     *float64                   `json:"exclusiveMinimum"`
	ExclusiveMaximum     *float64                   `json:"exclusiveMaximum"`
	MultipleOf           *float64                   `json:"multipleOf"`
	MinLength            *int                       `json:"minLength"`
	MaxLength            *int                       `json:"maxLength"`
	Defs                 map[string]json.RawMessage `json:"$defs"`

	props map[string]json.RawMessage // Properties decoded
	order []string                   // Properties' keys in document order
}

// decode decodes raw once.
func (g *valueGen) decode(raw json.RawMessage) *schemaNode {
	if len(raw) == 0 {
		return &schemaNode{}
	}
	if n, ok := g.nodes[&raw[0]]; ok {
		return n
	}
	n := &schemaNode{}
	if json.Unmarshal(raw, n) != nil {
		n = &schemaNode{}
	}
	if n.Properties != nil && json.Unmarshal(n.Properties, &n.props) == nil {
		n.order = objectKeys(n.Properties)
	}
	for k, v := range n.Defs {
		if _, ok := g.defs[k]; !ok {
			if g.defs == nil {
				g.defs = map[string]json.RawMessage{}
			}
			g.defs[k] = v
		}
	}
	g.nodes[&raw[0]] = n
	return n
}

// resolve decodes raw, following $refs into $defs and picking the first
// non-null member of a union: the node a value is generated for.
func (g *valueGen) resolve(raw json.RawMessage) *schemaNode {
	n := &schemaNode{}
	for range maxSchemaDepth {
		n = g.decode(raw)
		switch {
		case n.Ref != "":
			def, ok := g.defs[strings.TrimPrefix(n.Ref, "#/$defs/")]
			if !ok {
				return &schemaNode{}
			}
			raw = def
		case len(n.AnyOf) > 0 || len(n.OneOf) > 0 || len(n.AllOf) > 0:
			raw = g.firstNonNull(n)
		default:
			return n
		}
	}
	return n
}

// firstNonNull is the first member of n's union that is not
// {"type": "null"}.
func (g *valueGen) firstNonNull(n *schemaNode) json.RawMessage {
	var first json.RawMessage
	for _, members := range [][]json.RawMessage{n.AnyOf, n.OneOf, n.AllOf} {
		for _, m := range members {
			if first == nil {
				first = m
			}
			if g.decode(m).typ() != "null" {
				return m
			}
		}
	}
	return first
}

// typ is the node's JSON type: its first non-null "type", else what its
// keywords imply, else "string".
func (n *schemaNode) typ() string {
	var one string
	if json.Unmarshal(n.Type, &one) == nil && one != "" {
		return one
	}
	var many []string
	if json.Unmarshal(n.Type, &many) == nil {
		for _, t := range many {
			if t != "null" {
				return t
			}
		}
		if len(many) > 0 {
			return "null"
		}
	}
	switch {
	case n.Properties != nil || n.AdditionalProperties != nil:
		return "object"
	case n.Items != nil || n.PrefixItems != nil:
		return "array"
	}
	return "string"
}

// pick is a deterministic number for the value at path.
func (g *valueGen) pick(path string, n int) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(strconv.FormatUint(g.a.seed, 16) + "/" + path))
	return int(h.Sum64() % uint64(n))
}

// value writes the JSON text of a value of schema raw. name is the field
// or property the value is for, path its place in the answer, index its
// position in a list (-1 outside one).
func (g *valueGen) value(b *bytes.Buffer, raw json.RawMessage, name, path string, index, depth int) {
	g.budget--
	n := g.resolve(raw)
	exhausted := g.budget < 0 || depth > maxSchemaDepth
	switch {
	case n.Const != nil:
		writeCompact(b, n.Const)
		return
	case len(n.Enum) > 0:
		writeCompact(b, n.Enum[g.enumIndex(n.Enum, path)])
		return
	}
	switch n.typ() {
	case "null":
		b.WriteString("null")
	case "boolean":
		b.WriteString(strconv.FormatBool(g.pick(path, 2) == 1))
	case "integer":
		lo, hi := intBounds(n)
		v := lo + int64(g.pick(path, int(hi-lo)+1))
		if m, ok := multipleIn(n, float64(lo), float64(hi), g.pick(path, 1000)); ok && m == math.Trunc(m) {
			v = int64(m)
		}
		b.WriteString(strconv.FormatInt(v, 10))
	case "number":
		lo, hi := bounds(n, 0, 1)
		v := lo + (hi-lo)*float64(5+g.pick(path, 90))/100
		if r := math.Round(v*100) / 100; r >= lo && r <= hi {
			v = r // short, when that stays in range (and finite)
		}
		if m, ok := multipleIn(n, lo, hi, g.pick(path, 1000)); ok {
			v = m
		}
		b.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
	case "array":
		g.array(b, n, name, path, depth, exhausted)
	case "object":
		g.object(b, n, path, depth, exhausted)
	default:
		s, _ := json.Marshal(fitLength(g.text(name, index), n))
		b.Write(s)
	}
}

// multipleIn is a multiple of the schema's multipleOf within [lo, hi]
// (inside an exclusive end), picked by pick; false when there is no
// multipleOf or no multiple fits.
func multipleIn(n *schemaNode, lo, hi float64, pick int) (float64, bool) {
	if n.MultipleOf == nil || *n.MultipleOf <= 0 || math.IsInf(*n.MultipleOf, 0) {
		return 0, false
	}
	m := *n.MultipleOf
	first, last := math.Ceil(lo/m), math.Floor(hi/m)
	if n.ExclusiveMinimum != nil && n.Minimum == nil && first*m <= *n.ExclusiveMinimum {
		first++
	}
	if n.ExclusiveMaximum != nil && n.Maximum == nil && last*m >= *n.ExclusiveMaximum {
		last--
	}
	if last < first || last-first > 1e9 {
		return 0, false
	}
	k := first + float64(pick%int(last-first+1))
	return k * m, true
}

// fitLength cuts or pads s to the schema's minLength and maxLength (in
// characters, as pydantic counts them).
func fitLength(s string, n *schemaNode) string {
	r := []rune(s)
	if n.MaxLength != nil && len(r) > *n.MaxLength {
		r = r[:max(*n.MaxLength, 0)]
	}
	if n.MinLength != nil && *n.MinLength <= 10000 {
		for len(r) < *n.MinLength {
			r = append(r, 'x')
		}
	}
	return string(r)
}

// text is a string value: the QA answerer's text for a field, a keyword
// for a list item.
func (g *valueGen) text(name string, index int) string {
	if index >= 0 {
		return g.a.words[index%len(g.a.words)]
	}
	a := g.a
	if k := g.item % len(a.words); k > 0 {
		a.words = append(append([]string(nil), a.words[k:]...), a.words[:k]...)
	}
	return a.value(name)
}

// enumIndex picks one of a Literal's values: the question's type when the
// Literal offers it (a plausible label), else one by hash.
func (g *valueGen) enumIndex(enum []json.RawMessage, path string) int {
	for i, v := range enum {
		var s string
		if json.Unmarshal(v, &s) == nil && s == g.a.qtype {
			return i
		}
	}
	return g.pick(path, len(enum))
}

// bounds is a number's range: the schema's minimum and maximum (exclusive
// ones count as inclusive: values never land on the ends), else lo, hi.
func bounds(n *schemaNode, lo, hi float64) (float64, float64) {
	minimum, maximum := n.Minimum, n.Maximum
	if minimum == nil {
		minimum = n.ExclusiveMinimum
	}
	if maximum == nil {
		maximum = n.ExclusiveMaximum
	}
	span := hi - lo
	switch {
	case minimum != nil && maximum != nil && *maximum >= *minimum:
		lo, hi = *minimum, *maximum
	case minimum != nil:
		lo, hi = *minimum, *minimum+span
	case maximum != nil && *maximum < hi:
		lo, hi = *maximum-span, *maximum
	}
	return lo, min(hi, lo+1e6)
}

// intBounds is bounds for integers: whole ends inside the range.
func intBounds(n *schemaNode) (int64, int64) {
	lo, hi := bounds(n, 1, 9)
	if n.ExclusiveMinimum != nil && n.Minimum == nil && lo == math.Floor(lo) {
		lo++
	}
	if n.ExclusiveMaximum != nil && n.Maximum == nil && hi == math.Floor(hi) {
		hi--
	}
	lo, hi = math.Ceil(lo), math.Floor(hi)
	if hi < lo || lo < -1e18 || hi > 1e18 {
		return 1, 9 // no whole number fits, or none that is int64: give up on the bounds
	}
	return int64(lo), int64(hi)
}

// array writes a list of two items (minItems and maxItems permitting), or a
// tuple's prefixItems.
func (g *valueGen) array(b *bytes.Buffer, n *schemaNode, name, path string, depth int, exhausted bool) {
	count := defaultItems
	if n.MinItems != nil && *n.MinItems > count {
		count = min(*n.MinItems, maxItems)
	}
	if n.MaxItems != nil && *n.MaxItems < count {
		count = max(*n.MaxItems, 0)
	}
	if len(n.PrefixItems) > 0 {
		count = len(n.PrefixItems) // a tuple
	}
	if exhausted {
		count = 0
	}
	b.WriteByte('[')
	for i := range count {
		if i > 0 {
			b.WriteString(", ")
		}
		item := n.Items
		if i < len(n.PrefixItems) {
			item = n.PrefixItems[i]
		}
		if item == nil {
			item = json.RawMessage(`{}`)
		}
		outer := g.item
		g.item = i
		g.value(b, item, name, path+"."+strconv.Itoa(i), i, depth+1)
		g.item = outer
	}
	b.WriteByte(']')
}

// object writes a model's required properties in declaration order, or
// two entries of a mapping keyed by the question's keywords.
func (g *valueGen) object(b *bytes.Buffer, n *schemaNode, path string, depth int, exhausted bool) {
	b.WriteByte('{')
	defer b.WriteByte('}')
	if exhausted {
		return
	}
	if n.Properties != nil {
		required := map[string]bool{}
		for _, r := range n.Required {
			required[r] = true
		}
		first := true
		for _, k := range n.order {
			if !required[k] {
				continue // optional: absent is valid
			}
			if !first {
				b.WriteString(", ")
			}
			first = false
			writeKey(b, k)
			g.value(b, n.props[k], k, path+"."+k, -1, depth+1)
		}
		return
	}
	// A mapping: dict[str, V] has additionalProperties V.
	item := n.AdditionalProperties
	if item == nil || string(item) == "true" {
		item = json.RawMessage(`{}`)
	}
	if string(item) == "false" {
		return
	}
	for i, k := range g.a.words[:min(defaultItems, len(g.a.words))] {
		if i > 0 {
			b.WriteString(", ")
		}
		writeKey(b, k)
		g.value(b, item, k, path+"."+k, -1, depth+1)
	}
}

func writeKey(b *bytes.Buffer, k string) {
	kj, _ := json.Marshal(k)
	b.Write(kj)
	b.WriteString(": ")
}

// writeCompact writes a const or enum value, null if it is not JSON.
func writeCompact(b *bytes.Buffer, raw json.RawMessage) {
	if err := json.Compact(b, raw); err != nil {
		b.WriteString("null")
	}
}

// objectKeys returns the keys of a JSON object in document order (Go maps
// forget it, and a model's fields come in the order it declares them).
func objectKeys(raw json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return keys
		}
		k, _ := t.(string)
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return keys
		}
		keys = append(keys, k)
	}
	return keys
}
