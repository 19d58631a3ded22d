package program

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Field is one input or output field of a Signature.
type Field struct {
	// Name is the Python identifier used in prompts and outputs.
	Name string
	// Type is the annotation; the zero value is str.
	Type Type
	// Desc is the description. DSPy's default is "${name}", which prompts
	// show as empty.
	Desc string
	// Prefix is the legacy label ("Key Concepts:"). It never appears in Chat
	// or JSON prompts but is stored in saved state.
	Prefix string
	// Constraints are pydantic constraints given to the dspy field
	// (OutputField(ge=0)), in the order written. DSPy only shows them, on a
	// "Constraints:" line of the field list; nothing validates them.
	Constraints []Constraint
}

// Signature is a DSPy signature as data: instructions and ordered input and
// output fields. Signatures are immutable once built; the With… methods
// return copies.
type Signature struct {
	instructions string
	inputs       []Field
	outputs      []Field

	// structured is the structured-outputs response format, built on first
	// use: it depends on the outputs alone, which never change.
	structuredOnce sync.Once
	structured     *ResponseFormat
}

// NewSignature builds a signature as a DSPy class signature would: an empty
// instructions string gets DSPy's default ("Given the fields `a`, produce
// the fields `b`."), an empty Desc becomes "${name}" and an empty Prefix the
// inferred one.
func NewSignature(instructions string, inputs, outputs []Field) (*Signature, error) {
	s := &Signature{instructions: instructions}
	seen := map[string]bool{}
	for i, group := range [][]Field{inputs, outputs} {
		for _, f := range group {
			if !isIdentifier(f.Name) {
				return nil, fmt.Errorf("new signature: field name %q is not an identifier", f.Name)
			}
			if seen[f.Name] {
				return nil, fmt.Errorf("new signature: duplicate field %q", f.Name)
			}
			seen[f.Name] = true
			f = withFieldDefaults(f)
			if i == 0 {
				s.inputs = append(s.inputs, f)
			} else {
				s.outputs = append(s.outputs, f)
			}
		}
	}
	if instructions == "" {
		s.instructions = defaultInstructions(s.inputs, s.outputs)
	}
	return s, nil
}

func withFieldDefaults(f Field) Field {
	if f.Desc == "" {
		f.Desc = "${" + f.Name + "}"
	}
	if f.Prefix == "" {
		f.Prefix = inferPrefix(f.Name)
	}
	return f
}

// ParseSignature parses DSPy's string syntax, e.g.
// "question, context: list[str] -> answer, sufficient: bool". Fields without
// an annotation are str. Empty instructions give DSPy's default, computed
// from these fields only.
func ParseSignature(spec, instructions string) (*Signature, error) {
	if strings.Count(spec, "->") != 1 {
		return nil, fmt.Errorf("parse signature %q: need exactly one \"->\"", spec)
	}
	left, right, _ := strings.Cut(spec, "->")
	inputs, err := parseFieldList(left)
	if err != nil {
		return nil, fmt.Errorf("parse signature %q: inputs: %w", spec, err)
	}
	outputs, err := parseFieldList(right)
	if err != nil {
		return nil, fmt.Errorf("parse signature %q: outputs: %w", spec, err)
	}
	if len(outputs) == 0 {
		return nil, fmt.Errorf("parse signature %q: no output fields", spec)
	}
	s, err := NewSignature(instructions, inputs, outputs)
	if err != nil {
		return nil, fmt.Errorf("parse signature %q: %w", spec, err)
	}
	return s, nil
}

// parseFieldList parses "a, b: int, c: dict[str, int]" (commas inside
// brackets or quotes do not split).
func parseFieldList(s string) ([]Field, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var fields []Field
	for _, part := range splitTopLevel(s) {
		name, annot, hasType := strings.Cut(part, ":")
		name = strings.TrimSpace(name)
		if !isIdentifier(name) {
			return nil, fmt.Errorf("bad field name %q", name)
		}
		f := Field{Name: name}
		if hasType {
			t, err := ParseType(strings.TrimSpace(annot))
			if err != nil {
				return nil, err
			}
			f.Type = t
		}
		fields = append(fields, f)
	}
	return fields, nil
}

func splitTopLevel(s string) []string {
	var parts []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '[' || c == '(':
			depth++
		case c == ']' || c == ')':
			depth--
		case c == ',' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// defaultInstructions is DSPy's instructions for a signature without any:
// "Given the fields `a`, `b`, produce the fields `c`.".
func defaultInstructions(inputs, outputs []Field) string {
	return "Given the fields " + backticked(inputs) + ", produce the fields " + backticked(outputs) + "."
}

func backticked(fields []Field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = "`" + f.Name + "`"
	}
	return strings.Join(names, ", ")
}

// Instructions returns the instructions as DSPy reads them: through
// inspect.cleandoc.
func (s *Signature) Instructions() string { return cleandoc(s.instructions) }

// Inputs returns a copy of the input fields in order.
func (s *Signature) Inputs() []Field { return append([]Field(nil), s.inputs...) }

// Outputs returns a copy of the output fields in order.
func (s *Signature) Outputs() []Field { return append([]Field(nil), s.outputs...) }

// Fields returns every field, inputs first, the order of prompts and of
// saved state.
func (s *Signature) Fields() []Field {
	return append(s.Inputs(), s.outputs...)
}

// Output returns the output field with the given name.
func (s *Signature) Output(name string) (Field, bool) {
	for _, f := range s.outputs {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// OutputNames returns the output field names in order.
func (s *Signature) OutputNames() []string {
	names := make([]string, len(s.outputs))
	for i, f := range s.outputs {
		names[i] = f.Name
	}
	return names
}

// WithInstructions returns a copy with new (raw) instructions.
func (s *Signature) WithInstructions(instructions string) *Signature {
	c := s.clone()
	c.instructions = instructions
	return c
}

// Prepend returns a copy with f inserted as the first output field, as
// DSPy's Signature.prepend does for ChainOfThought's reasoning.
func (s *Signature) Prepend(f Field) (*Signature, error) {
	for _, g := range s.Fields() {
		if g.Name == f.Name {
			return nil, fmt.Errorf("prepend field: %q already exists", f.Name)
		}
	}
	c := s.clone()
	c.outputs = append([]Field{withFieldDefaults(f)}, c.outputs...)
	return c, nil
}

// withFieldText returns a copy whose fields, inputs then outputs, take the
// given prefixes and descriptions positionally, as Predict.load_state does.
func (s *Signature) withFieldText(texts []fieldText) (*Signature, error) {
	c := s.clone()
	all := len(c.inputs) + len(c.outputs)
	if len(texts) != all {
		return nil, errors.New("field count mismatch")
	}
	for i, t := range texts {
		f := &c.inputs
		j := i
		if i >= len(c.inputs) {
			f, j = &c.outputs, i-len(c.inputs)
		}
		(*f)[j].Prefix = t.prefix
		(*f)[j].Desc = t.desc
	}
	return c, nil
}

type fieldText struct{ prefix, desc string }

func (s *Signature) clone() *Signature {
	return &Signature{instructions: s.instructions, inputs: s.Inputs(), outputs: s.Outputs()}
}

// Prefix inference, DSPy's infer_prefix: Python re semantics, so [A-Z] and
// [a-z] are ASCII while \d is any decimal digit.
var (
	prefixCamelWord  = regexp.MustCompile(`(.)([A-Z][a-z]+)`)
	prefixLowerUpper = regexp.MustCompile(`([a-z0-9])([A-Z])`)
	prefixAlphaDigit = regexp.MustCompile(`([a-zA-Z])(\p{Nd})`)
	prefixDigitAlpha = regexp.MustCompile(`(\p{Nd})([a-zA-Z])`)
)

// inferPrefix is DSPy's default prefix for a field name, colon included:
// "key_concepts" gives "Key Concepts:", "HTMLParser" gives "HTML Parser:".
func inferPrefix(name string) string {
	s := prefixCamelWord.ReplaceAllString(name, "${1}_${2}")
	s = prefixLowerUpper.ReplaceAllString(s, "${1}_${2}")
	s = prefixAlphaDigit.ReplaceAllString(s, "${1}_${2}")
	s = prefixDigitAlpha.ReplaceAllString(s, "${1}_${2}")
	words := strings.Split(s, "_")
	for i, w := range words {
		if !pyIsUpper(w) {
			words[i] = pyCapitalize(w)
		}
	}
	return strings.Join(words, " ") + ":"
}
