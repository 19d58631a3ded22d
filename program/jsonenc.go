package program

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// jsonStyle selects which writer's bytes a JSON encoding reproduces.
type jsonStyle struct {
	// indent is the indent step; 0 writes one line.
	indent int
	// pySeparators writes ", " and ": " on one line, as Python's json.dumps
	// does by default (compact output otherwise: "," and ":").
	pySeparators bool
	// orjsonFloats formats floats as orjson (ryu) does; otherwise as Python's
	// float repr, which json.dumps uses.
	orjsonFloats bool
	// sortKeys writes every object's keys sorted (orjson's OPT_SORT_KEYS:
	// by UTF-8 bytes, as Go compares strings), not in insertion order.
	sortKeys bool
}

var (
	// styleDumps is json.dumps(v, ensure_ascii=False).
	styleDumps = jsonStyle{pySeparators: true}
	// styleDumpsIndent is json.dumps(v, indent=2, ensure_ascii=False).
	styleDumpsIndent = jsonStyle{indent: 2}
	// styleOrjsonIndent is orjson.dumps(v, option=OPT_INDENT_2).
	styleOrjsonIndent = jsonStyle{indent: 2, orjsonFloats: true}
	// styleCompact is compact JSON with no spaces (orjson's default layout).
	styleCompact = jsonStyle{orjsonFloats: true}
	// styleSorted is orjson.dumps(v, option=OPT_SORT_KEYS).
	styleSorted = jsonStyle{orjsonFloats: true, sortKeys: true}
	// stylePyCompact is json.dumps(v, separators=(",", ":"),
	// ensure_ascii=False), as the openai client writes a request body.
	stylePyCompact = jsonStyle{}
)

// pyJSONCompact is json.dumps(v, separators=(",", ":"), ensure_ascii=False).
func pyJSONCompact(v any) []byte {
	b, _ := encodeJSON(v, stylePyCompact)
	return b
}

// pyJSONDumps is Python's json.dumps(v, ensure_ascii=False).
func pyJSONDumps(v any) string {
	b, _ := encodeJSON(v, styleDumps)
	return string(b)
}

// pyJSONDumpsIndent is Python's json.dumps(v, indent=2, ensure_ascii=False).
func pyJSONDumpsIndent(v any) string {
	b, _ := encodeJSON(v, styleDumpsIndent)
	return string(b)
}

// marshalCompact writes compact JSON (no spaces) with keys in order.
func marshalCompact(v any) ([]byte, error) { return encodeJSON(v, styleCompact) }

// encodeJSON writes v in the given style. Values are those of DecodeJSON;
// Go-built values are first converted with toOrdered. Non-ASCII text is
// written raw, as with ensure_ascii=False and orjson.
func encodeJSON(v any, st jsonStyle) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, toOrdered(v), st, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeJSON(b *bytes.Buffer, v any, st jsonStyle, depth int) error {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		writeJSONString(b, t)
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case BigInt:
		b.WriteString(string(t))
	case float64:
		if st.orjsonFloats {
			b.WriteString(orjsonFloat(t))
		} else {
			b.WriteString(pyJSONFloat(t))
		}
	case []any:
		if len(t) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, e := range t {
			writeSeparator(b, st, depth+1, i > 0)
			if err := writeJSON(b, e, st, depth+1); err != nil {
				return err
			}
		}
		writeClose(b, st, depth)
		b.WriteByte(']')
	case *Map:
		if t.Len() == 0 {
			b.WriteString("{}")
			return nil
		}
		keys := t.keys
		if st.sortKeys {
			keys = slices.Sorted(slices.Values(keys))
		}
		b.WriteByte('{')
		for i, k := range keys {
			writeSeparator(b, st, depth+1, i > 0)
			writeJSONString(b, k)
			if st.indent > 0 || st.pySeparators {
				b.WriteString(": ")
			} else {
				b.WriteByte(':')
			}
			if err := writeJSON(b, t.values[k], st, depth+1); err != nil {
				return err
			}
		}
		writeClose(b, st, depth)
		b.WriteByte('}')
	default:
		return fmt.Errorf("encode JSON: unsupported value %T", v)
	}
	return nil
}

// writeSeparator writes what precedes an element: the comma, then either a
// newline with indentation or (for Python's one-line style) a space.
func writeSeparator(b *bytes.Buffer, st jsonStyle, depth int, comma bool) {
	if comma {
		b.WriteByte(',')
	}
	switch {
	case st.indent > 0:
		b.WriteByte('\n')
		b.WriteString(strings.Repeat(" ", st.indent*depth))
	case st.pySeparators && comma:
		b.WriteByte(' ')
	}
}

func writeClose(b *bytes.Buffer, st jsonStyle, depth int) {
	if st.indent > 0 {
		b.WriteByte('\n')
		b.WriteString(strings.Repeat(" ", st.indent*depth))
	}
}

// writeJSONString escapes as Python's json (ensure_ascii=False) and orjson
// both do: quote, backslash and control characters only; "/", "<", ">",
// "&", U+2028 and U+2029 stay raw.
func writeJSONString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

// pyFloatRepr is Python's repr(float) (and str(float)): the shortest digits
// that round-trip, in fixed notation with at least one decimal when the
// decimal exponent is in [-4, 16), else in scientific notation with a signed
// exponent of at least two digits.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	digits, exp, neg := shortestDigits(f)
	sign := ""
	if neg {
		sign = "-"
	}
	decpt := exp + 1 // position of the decimal point relative to digits
	if decpt > 16 || decpt < -3 {
		mant := digits[:1]
		if len(digits) > 1 {
			mant += "." + digits[1:]
		}
		e := decpt - 1
		es := "+"
		if e < 0 {
			es, e = "-", -e
		}
		return fmt.Sprintf("%s%se%s%02d", sign, mant, es, e)
	}
	return sign + fixedDigits(digits, decpt, true)
}

// pyJSONFloat is how Python's json.dumps writes a float.
func pyJSONFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return pyFloatRepr(f)
}

// orjsonFloat is how orjson (through ryu) writes a float: fixed notation
// while the exponent is in (-5, 16], keeping ".0" on integral values,
// otherwise "1e16" / "1.5e-7" with no "+" and no padding. orjson writes
// non-finite floats as null.
func orjsonFloat(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null"
	}
	digits, exp, neg := shortestDigits(f)
	sign := ""
	if neg {
		sign = "-"
	}
	kk := exp + 1
	if kk > -5 && kk <= 16 {
		return sign + fixedDigits(digits, kk, true)
	}
	mant := digits[:1]
	if len(digits) > 1 {
		mant += "." + digits[1:]
	}
	return fmt.Sprintf("%s%se%d", sign, mant, kk-1)
}

// shortestDigits returns the shortest round-trip decimal digits of |f| and
// the decimal exponent of the first digit.
func shortestDigits(f float64) (digits string, exp int, neg bool) {
	s := strconv.FormatFloat(f, 'e', -1, 64) // "-d.ddde±XX"
	if s[0] == '-' {
		neg, s = true, s[1:]
	}
	mant, e, _ := strings.Cut(s, "e")
	exp, _ = strconv.Atoi(e)
	digits = strings.Replace(mant, ".", "", 1)
	if f == 0 {
		digits, exp = "0", 0
	}
	return digits, exp, neg
}

// fixedDigits places the decimal point decpt digits into digits, padding with
// zeros, and appends ".0" to integral values when keepPoint is set.
func fixedDigits(digits string, decpt int, keepPoint bool) string {
	switch {
	case decpt <= 0:
		return "0." + strings.Repeat("0", -decpt) + digits
	case decpt >= len(digits):
		s := digits + strings.Repeat("0", decpt-len(digits))
		if keepPoint {
			s += ".0"
		}
		return s
	default:
		return digits[:decpt] + "." + digits[decpt:]
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func sortStrings(s []string) { slices.Sort(s) }

// EncodeSortedJSON writes v as orjson.dumps(v, option=OPT_SORT_KEYS) does:
// compact, keys sorted at every level, raw UTF-8 with only '"', '\\' and
// control characters escaped, floats as orjson writes them (1.0, 0.000025,
// 1e16). DSPy hashes its LM requests so (the cache key). Like orjson, it
// refuses text that is not valid UTF-8.
func EncodeSortedJSON(v any) ([]byte, error) {
	b, err := encodeJSON(v, styleSorted)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(b) {
		return nil, errors.New("encode JSON: text is not valid UTF-8")
	}
	return b, nil
}

// WriteSortedJSONString writes s as EncodeSortedJSON writes a string:
// quoted, with '"', '\\' and control characters escaped. It does not check
// that s is UTF-8 (EncodeSortedJSON does, over all it writes).
func WriteSortedJSONString(b *bytes.Buffer, s string) { writeJSONString(b, s) }

// EncodeJSONIndent writes v as Python's json.dumps(v, indent=2,
// ensure_ascii=False) does: keys in order (*Map) or sorted (Go maps), raw
// UTF-8, Python float formatting. The qa prompt and parse commands print
// with it.
func EncodeJSONIndent(v any) ([]byte, error) {
	if msgs, ok := v.([]Message); ok {
		list := make([]any, len(msgs))
		for i, m := range msgs {
			o := NewMap()
			o.Set("role", m.Role)
			o.Set("content", m.Content)
			list[i] = o
		}
		v = list
	}
	return encodeJSON(v, styleDumpsIndent)
}
