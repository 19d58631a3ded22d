package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"
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
	e := outputEncoders.Get().(*outputEncoder)
	defer e.release()
	b := &e.buf
	b.WriteByte('{')
	for i := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		// A pointer into o: a string would be boxed for Encode.
		if err := e.enc.Encode(&o[i].Name); err != nil {
			return nil, fmt.Errorf("encode output name: %w", err)
		}
		b.Truncate(b.Len() - 1) // Encode's newline
		b.WriteByte(':')
		if err := e.enc.Encode(o[i].Value); err != nil {
			return nil, fmt.Errorf("encode output %s: %w", o[i].Name, err)
		}
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte('}')
	return bytes.Clone(b.Bytes()), nil
}

// outputEncoder is an Encoder writing into its own buffer, kept in
// outputEncoders between MarshalJSON calls.
type outputEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// maxPooledOutputs is the largest buffer an outputEncoder keeps when it is
// given back: a rare huge result's buffer is left to the collector.
const maxPooledOutputs = 64 << 10

var outputEncoders = sync.Pool{New: func() any {
	e := new(outputEncoder)
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// release empties e and gives it back to outputEncoders.
func (e *outputEncoder) release() {
	if e.buf.Cap() > maxPooledOutputs {
		return
	}
	e.buf.Reset()
	outputEncoders.Put(e)
}

// UnmarshalJSON reads an object's fields in the order they are written.
func (o *Outputs) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*o = nil
		return nil
	}
	if out, ok := scanOutputs(data); ok {
		*o = out
		return nil
	}
	return o.unmarshalTokens(data)
}

// unmarshalTokens reads the object token by token, through encoding/json.
func (o *Outputs) unmarshalTokens(data []byte) error {
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

// scanOutputs reads a valid JSON object's fields in one pass: strings,
// numbers and literals directly (most outputs are strings), only nested
// objects and arrays through encoding/json. ok is false for anything else,
// which the token reader then reads (and reports).
func scanOutputs(data []byte) (out Outputs, ok bool) {
	if !json.Valid(data) {
		return nil, false
	}
	out = Outputs{}
	ok = eachField(data, func(key, raw []byte) bool {
		name, ok := jsonString(key)
		if !ok {
			return false
		}
		v, ok := jsonValue(raw)
		out = append(out, Output{Name: name, Value: v})
		return ok
	})
	if !ok {
		return nil, false
	}
	return out, true
}

// eachField calls f with each field of data, a valid JSON value, in order:
// its key's string literal and its value's bytes. It is false if data is
// not an object or f is false for a field.
func eachField(data []byte, f func(key, value []byte) bool) bool {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	for i < len(data) && data[i] != '}' {
		end := skipValue(data, i) // the key, a string in a valid object
		key := data[i:end]
		i = skipSpace(data, skipSpace(data, end)+1) // past the colon
		end = skipValue(data, i)
		if !f(key, data[i:end]) {
			return false
		}
		i = skipSpace(data, end)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return true
}

// jsonValue decodes one valid value as Outputs' values decode.
func jsonValue(raw []byte) (any, bool) {
	switch raw[0] {
	case '"':
		return jsonString(raw)
	case 't':
		return true, true
	case 'f':
		return false, true
	case 'n':
		return nil, true
	case '{', '[':
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		return v, dec.Decode(&v) == nil
	}
	return json.Number(raw), true
}

// jsonString decodes one valid string literal; one without escapes or
// invalid UTF-8 is its own bytes.
func jsonString(raw []byte) (string, bool) {
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
		return string(body), true
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value that starts at i.
func skipValue(data []byte, i int) int {
	depth := 0
	for ; i < len(data); i++ {
		switch data[i] {
		case '"':
			for i++; data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
			if depth < 0 {
				return i
			}
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}
