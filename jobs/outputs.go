package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Output is one output field of a result.
type Output struct {
	Name  string
	Value any
}

// Outputs are a result's output fields in the order of the program's
// signature (reasoning first for a chain of thought), as the program
// returned them. They marshal as a JSON object with the fields in that
// order, and unmarshal from one keeping its order; values decode as
// encoding/json decodes into any, except numbers, which stay json.Number as
// written: a float output stored as 1.0 goes out again as 1.0.
type Outputs []Output

// Get returns the value of the output field name and whether it is there.
func (o Outputs) Get(name string) (any, bool) {
	for _, f := range o {
		if f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

// MarshalJSON writes the fields as one object, in order. It leaves HTML
// characters alone: encoding/json escapes what a Marshaler returns as its
// own caller asked (json.Marshal does, an Encoder may not).
func (o Outputs) MarshalJSON() ([]byte, error) {
	if o == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := enc.Encode(f.Name); err != nil {
			return nil, fmt.Errorf("encode output name: %w", err)
		}
		b.Truncate(b.Len() - 1) // Encode's newline
		b.WriteByte(':')
		if err := enc.Encode(f.Value); err != nil {
			return nil, fmt.Errorf("encode output %s: %w", f.Name, err)
		}
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an object's fields in the order they are written.
func (o *Outputs) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*o = nil
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("decode outputs: not an object")
	}
	out := Outputs{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("decode outputs: %w", err)
		}
		f := Output{Name: tok.(string)} // an object's keys are strings
		if err := dec.Decode(&f.Value); err != nil {
			return fmt.Errorf("decode output %s: %w", f.Name, err)
		}
		out = append(out, f)
	}
	*o = out
	return nil
}
