package program

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pyStr is Python's str() of a decoded JSON value: strings unchanged,
// True/False/None, float repr, and repr for containers.
func pyStr(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return pyRepr(v)
}

// pyRepr is Python's repr() of a decoded JSON value.
func pyRepr(v any) string {
	if tup, ok := v.(pyTuple); ok {
		if len(tup) == 1 {
			return "(" + pyRepr(tup[0]) + ",)"
		}
		return "(" + strings.TrimSuffix(strings.TrimPrefix(pyRepr([]any(tup)), "["), "]") + ")"
	}
	switch t := toOrdered(v).(type) {
	case nil:
		return "None"
	case bool:
		if t {
			return "True"
		}
		return "False"
	case string:
		return pyReprString(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case BigInt:
		return string(t)
	case float64:
		return pyFloatRepr(t)
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case *Map:
		parts := make([]string, 0, t.Len())
		for _, k := range t.keys {
			parts = append(parts, pyReprString(k)+": "+pyRepr(t.values[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// pyReprString is Python's repr() of a str: single quotes unless the text
// holds a single quote and no double quote; backslash, the chosen quote and
// non-printable characters escaped.
func pyReprString(s string) string {
	quote := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case !isValidRune(r, n):
			fmt.Fprintf(&b, `\x%02x`, s[i-1])
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(quote):
			b.WriteByte('\\')
			b.WriteByte(quote)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// literalQuote quotes a string Literal value the way DSPy's
// _quoted_string_for_literal_type_annotation does in type names: single
// quotes, double quotes when only a single quote occurs, and escaped single
// quotes when both occur. Nothing else is escaped.
func literalQuote(s string) string {
	hasSingle := strings.Contains(s, "'")
	hasDouble := strings.Contains(s, `"`)
	switch {
	case hasSingle && !hasDouble:
		return `"` + s + `"`
	case hasSingle && hasDouble:
		return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
	default:
		return "'" + s + "'"
	}
}
