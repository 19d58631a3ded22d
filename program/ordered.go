package program

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Map is a JSON object that keeps its keys in insertion order, as a Python
// dict does. DSPy's saved demos, prompt values and parsed outputs depend on
// that order, which Go maps lose.
//
// Values are JSON values as DecodeJSON produces them: nil, bool, string,
// int64, BigInt, float64, []any and *Map.
type Map struct {
	keys   []string
	values map[string]any
}

// NewMap returns an empty Map.
func NewMap() *Map { return &Map{values: map[string]any{}} }

// Set stores v under k. A new key goes last; an existing key keeps its place,
// as assigning to a Python dict does.
func (m *Map) Set(k string, v any) {
	if m.values == nil {
		m.values = map[string]any{}
	}
	if _, ok := m.values[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.values[k] = v
}

// Get returns the value stored under k and whether it exists.
func (m *Map) Get(k string) (any, bool) {
	if m == nil {
		return nil, false
	}
	v, ok := m.values[k]
	return v, ok
}

// Has reports whether k is present (even with a nil value).
func (m *Map) Has(k string) bool {
	_, ok := m.Get(k)
	return ok
}

// Keys returns the keys in insertion order. The slice is a copy.
func (m *Map) Keys() []string {
	if m == nil {
		return nil
	}
	return append([]string(nil), m.keys...)
}

// Len returns the number of keys.
func (m *Map) Len() int {
	if m == nil {
		return 0
	}
	return len(m.keys)
}

// MarshalJSON writes the object with its keys in order.
func (m *Map) MarshalJSON() ([]byte, error) {
	return marshalCompact(m)
}

// UnmarshalJSON reads an object, keeping key order.
func (m *Map) UnmarshalJSON(data []byte) error {
	v, err := DecodeJSON(data)
	if err != nil {
		return err
	}
	o, ok := v.(*Map)
	if !ok {
		return fmt.Errorf("decode object: got %s", jsonKind(v))
	}
	*m = *o
	return nil
}

// BigInt is a JSON integer too large for int64, kept as its decimal digits
// (Python ints have no size limit).
type BigInt string

// DecodeJSON decodes one JSON value, keeping object key order (as *Map),
// integers as int64 (or BigInt) and other numbers as float64, the way
// Python's json module tells int from float.
func DecodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: extra data after the value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("invalid JSON: unexpected end of input")
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := NewMap()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("invalid JSON: %w", err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errors.New("invalid JSON: object key is not a string")
				}
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				m.Set(k, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("invalid JSON: %w", err)
			}
			return m, nil
		case '[':
			list := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("invalid JSON: %w", err)
			}
			return list, nil
		}
		return nil, fmt.Errorf("invalid JSON: unexpected %q", rune(t))
	case json.Number:
		return numberValue(string(t)), nil
	default:
		return t, nil // string, bool or nil
	}
}

// numberValue turns JSON number text into int64, BigInt or float64, as
// Python's json module would pick int or float.
func numberValue(s string) any {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
		return BigInt(s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// Out of range: Python's float() gives inf, which ParseFloat also
		// returns alongside the error.
		return f
	}
	return f
}

// jsonType names the JSON type of a value, however it was decoded or
// built in Go: "null", "boolean", "string", "number", "array" or
// "object" (a Go type's name for anything else).
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number, int, int32, int64, BigInt, float64:
		return "number"
	case []any, pyTuple:
		return "array"
	case *Map, map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// jsonKind names a value's JSON type for error messages: "null", "a
// boolean", "an array", ….
func jsonKind(v any) string {
	switch t := jsonType(v); t {
	case "null":
		return t
	case "array", "object":
		return "an " + t
	default:
		return "a " + t
	}
}

// toOrdered converts values built in Go (map[string]any, []string, int and
// so on) into the decoded forms the formatters expect. Plain maps get sorted
// keys, the only order they can offer.
func toOrdered(v any) any {
	switch t := v.(type) {
	case nil, bool, string, int64, BigInt, float64, *Map:
		return t
	case int:
		return int64(t)
	case int32:
		return int64(t)
	case float32:
		return float64(t)
	case json.Number:
		return numberValue(string(t))
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = toOrdered(e)
		}
		return out
	case []string:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = e
		}
		return out
	case map[string]any:
		m := NewMap()
		for _, k := range sortedKeys(t) {
			m.Set(k, toOrdered(t[k]))
		}
		return m
	case map[string]string:
		m := NewMap()
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sortStrings(keys)
		for _, k := range keys {
			m.Set(k, t[k])
		}
		return m
	}
	// Anything else goes through encoding/json, as pydantic would dump it.
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	d, err := DecodeJSON(data)
	if err != nil {
		return fmt.Sprint(v)
	}
	return d
}
