package program

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Constraint is a pydantic constraint: of a model field, Field(ge=0) or
// Field(max_length=3) (numeric bounds and multiple_of on an int or float
// field, lengths on a str or list field, or on Optional of one; see
// CheckConstraints), or of a signature field, which DSPy only shows.
type Constraint struct {
	// Name is the keyword: gt, ge, lt, le, multiple_of, min_length,
	// max_length (and, on signature fields, allow_inf_nan or pattern).
	Name string
	// Value is the literal given: int64 or float64 for a model field's
	// bound (int64 for lengths); any literal on a signature field.
	Value any
}

// constraintSchemaKeys are the JSON schema keywords pydantic writes for
// each constraint, by the kind of type it bounds.
var constraintSchemaKeys = map[string]map[string]string{
	"number": {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum", "multiple_of": "multipleOf"},
	"str":    {"min_length": "minLength", "max_length": "maxLength"},
	"list":   {"min_length": "minItems", "max_length": "maxItems"},
}

// constrainedKind is the kind of type constraints bound ("number", "str",
// "list"), looking through Optional, or "" when t takes none.
func constrainedKind(t Type) (Type, string) {
	if t.isUnion() {
		var inner []Type
		for _, a := range t.Args {
			if a.Name != "NoneType" {
				inner = append(inner, a)
			}
		}
		if len(inner) != 1 || len(inner) == len(t.Args) {
			return t, ""
		}
		t = inner[0]
	}
	switch t.name() {
	case "int", "float":
		return t, "number"
	case "str":
		return t, "str"
	case "list", "set", "frozenset", "tuple":
		return t, "list"
	}
	return t, ""
}

// CheckConstraints reports whether pydantic accepts cs on a field of type
// t: each keyword applies to the type's kind, an int's bounds are ints,
// lengths are non-negative ints.
func CheckConstraints(t Type, cs []Constraint) error {
	inner, kind := constrainedKind(t)
	for _, c := range cs {
		if _, ok := constraintSchemaKeys[kind][c.Name]; !ok {
			return fmt.Errorf("constraint %s= does not apply to %s", c.Name, t)
		}
		switch v := c.Value.(type) {
		case int64:
			if kind != "number" && v < 0 {
				return fmt.Errorf("constraint %s= must not be negative", c.Name)
			}
		case float64:
			if kind != "number" || inner.name() == "int" {
				return fmt.Errorf("constraint %s= on %s must be an integer", c.Name, t)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("constraint %s= must be finite", c.Name)
			}
		default:
			return fmt.Errorf("constraint %s= must be a number", c.Name)
		}
		if c.Name == "multiple_of" && toFloat(c.Value) <= 0 {
			return fmt.Errorf("constraint multiple_of= must be positive")
		}
	}
	return nil
}

// constrainSchema adds the constraints' keywords to a field's schema (to
// the non-null member of an Optional's anyOf, as pydantic does).
func constrainSchema(s *Map, t Type, cs []Constraint) {
	_, kind := constrainedKind(t)
	target := s
	if anyOf, ok := s.Get("anyOf"); ok {
		for _, m := range anyOf.([]any) {
			if mm, isMap := m.(*Map); isMap {
				if typ, _ := mm.Get("type"); typ != "null" {
					target = mm
					break
				}
			}
		}
	}
	for _, c := range cs {
		target.Set(constraintSchemaKeys[kind][c.Name], c.Value)
	}
}

// tooLong is pydantic's too_long error when a list input exceeds a
// max_length: checked before the items, and the only error then.
func tooLong(input any, t Type, cs []Constraint) error {
	if _, kind := constrainedKind(t); kind != "list" {
		return nil
	}
	n := -1
	switch l := input.(type) {
	case []any:
		n = len(l)
	case pyTuple:
		n = len(l)
	}
	for _, c := range cs {
		if c.Name == "max_length" && n >= 0 && int64(n) > c.Value.(int64) {
			err := invalid("too_long", fmt.Sprintf("List should have at most %s after validation, not %d", plural(c.Value.(int64), "item"), n), input)
			l := &err.(*validationError).lines[0]
			l.want, l.got = fmt.Sprintf("%s of at most %s", t, plural(c.Value.(int64), "item")), plural(int64(n), "item")
			return err
		}
	}
	return nil
}

// applyConstraints checks a validated value v (from input) against cs in
// pydantic-core's order: multiple_of, le, lt, ge, gt; lengths. Its error
// says, for CheckValue, the bound wanted and the value or length that came.
func applyConstraints(v, input any, t Type, cs []Constraint) error {
	err := constraintError(v, input, t, cs)
	if ve, ok := err.(*validationError); ok {
		ve.lines[0].want, ve.lines[0].got = constraintWant(t, v, ve.lines[0].kind, cs)
	}
	return err
}

// constraintWant describes a failed constraint: "float <= 1", "1.5".
func constraintWant(t Type, v any, kind string, cs []Constraint) (want, got string) {
	inner, _ := constrainedKind(t)
	ops := map[string]string{"multiple_of": "a multiple of ", "less_than_equal": "<= ", "less_than": "< ", "greater_than_equal": ">= ", "greater_than": "> "}
	names := map[string]string{"multiple_of": "multiple_of", "less_than_equal": "le", "less_than": "lt", "greater_than_equal": "ge", "greater_than": "gt",
		"string_too_short": "min_length", "string_too_long": "max_length", "too_short": "min_length"}
	for _, c := range cs {
		if c.Name != names[kind] {
			continue
		}
		switch kind {
		case "string_too_short", "string_too_long":
			bound := "at most "
			if kind == "string_too_short" {
				bound = "at least "
			}
			n := int64(utf8.RuneCountInString(v.(string)))
			return "str of " + bound + plural(c.Value.(int64), "character"), plural(n, "character")
		case "too_short":
			return fmt.Sprintf("%s of at least %s", inner, plural(c.Value.(int64), "item")), plural(int64(len(v.([]any))), "item")
		}
		return inner.String() + " " + ops[kind] + formatBound(c.Value), formatBound(v)
	}
	return t.String(), ""
}

func constraintError(v, input any, t Type, cs []Constraint) error {
	if v == nil {
		return nil // Optional's None
	}
	_, kind := constrainedKind(t)
	switch kind {
	case "number":
		f := toFloat(v)
		for _, name := range []string{"multiple_of", "le", "lt", "ge", "gt"} {
			for _, c := range cs {
				if c.Name == name && !numberWithin(v, f, c) {
					return invalid(numberErrors[name][0], numberErrors[name][1]+formatBound(c.Value), input)
				}
			}
		}
	case "str":
		n := int64(utf8.RuneCountInString(v.(string)))
		for _, c := range cs {
			bound := c.Value.(int64)
			if c.Name == "min_length" && n < bound {
				return invalid("string_too_short", "String should have at least "+plural(bound, "character"), input)
			}
			if c.Name == "max_length" && n > bound {
				return invalid("string_too_long", "String should have at most "+plural(bound, "character"), input)
			}
		}
	case "list":
		n := int64(len(v.([]any)))
		for _, c := range cs {
			if bound := c.Value.(int64); c.Name == "min_length" && n < bound {
				return invalid("too_short", fmt.Sprintf("List should have at least %s after validation, not %d", plural(bound, "item"), n), input)
			}
		}
	}
	return nil
}

// numberErrors are pydantic's error type and message head per bound.
var numberErrors = map[string][2]string{
	"multiple_of": {"multiple_of", "Input should be a multiple of "},
	"le":          {"less_than_equal", "Input should be less than or equal to "},
	"lt":          {"less_than", "Input should be less than "},
	"ge":          {"greater_than_equal", "Input should be greater than or equal to "},
	"gt":          {"greater_than", "Input should be greater than "},
}

// numberWithin reports whether v (as float f) meets c.
func numberWithin(v any, f float64, c Constraint) bool {
	b := toFloat(c.Value)
	switch c.Name {
	case "multiple_of":
		if vi, ok := v.(int64); ok {
			if bi, ok := c.Value.(int64); ok {
				return vi%bi == 0
			}
		}
		// pydantic-core's float check: a remainder within |v|/1e9 of 0 or
		// of the divisor passes.
		rem := math.Mod(f, b)
		threshold := math.Abs(f) / 1e9
		return math.Abs(rem) <= threshold || math.Abs(rem-b) <= threshold
	case "le":
		return f <= b
	case "lt":
		return f < b
	case "ge":
		return f >= b
	case "gt":
		return f > b
	}
	return true
}

func toFloat(v any) float64 {
	switch t := v.(type) {
	case int64:
		return float64(t)
	case float64:
		return t
	case BigInt:
		f, _ := strconv.ParseFloat(string(t), 64)
		return f
	}
	return math.NaN()
}

// formatBound writes a bound as pydantic-core's messages do (Rust's
// Display: 1.0 is "1", 1e-7 is "0.0000001").
func formatBound(v any) string {
	if i, ok := v.(int64); ok {
		return strconv.FormatInt(i, 10)
	}
	return strconv.FormatFloat(toFloat(v), 'f', -1, 64)
}

// plural is "1 item", "2 items".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}
