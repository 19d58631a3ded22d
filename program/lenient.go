package program

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxLenientDepth bounds nesting so hostile input cannot exhaust the stack.
const maxLenientDepth = 256

// repairJSON approximates json_repair.loads, which DSPy uses to read LM
// output: strict JSON first; otherwise the first object or array in the
// text, read leniently (code fences and prose around it, single quotes,
// unquoted keys, trailing or missing commas, Python's True/False (None
// stays the string "None"),
// unclosed brackets at the end). Like json_repair it returns "" when it
// finds nothing. ok is false only for that empty result.
func repairJSON(s string) (v any, ok bool) {
	if v, err := DecodeJSON([]byte(s)); err == nil {
		return v, true
	}
	start := strings.IndexAny(s, "{[")
	if start < 0 {
		return "", false
	}
	p := &lenientParser{src: s, pos: start}
	return p.value(0), true
}

// firstBalancedObject returns the first "{…}" whose braces balance, as
// DSPy's recursive regex \{(?:[^{}]|(?R))*\} finds it (braces inside strings
// count too).
func firstBalancedObject(s string) (string, bool) {
	for start := strings.IndexByte(s, '{'); start >= 0; {
		depth := 0
		for i := start; i < len(s); i++ {
			switch s[i] {
			case '{':
				depth++
			case '}':
				depth--
				if depth == 0 {
					return s[start : i+1], true
				}
			}
		}
		next := strings.IndexByte(s[start+1:], '{')
		if next < 0 {
			break
		}
		start += 1 + next
	}
	return "", false
}

// pyLiteralEval approximates ast.literal_eval for the literals an LM
// writes: numbers, quoted strings, True/False/None, lists, tuples and dicts.
func pyLiteralEval(s string) (any, error) {
	p := &lenientParser{src: strings.TrimLeft(s, " \t"), strict: true}
	v := p.value(0)
	if p.err != nil {
		return nil, p.err
	}
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == ',' {
		// A bare tuple: "1,234" is (1, 234), "1," is (1,).
		tup := pyTuple{v}
		for p.pos < len(p.src) && p.src[p.pos] == ',' {
			p.pos++
			p.skipSpace()
			if p.pos == len(p.src) {
				break
			}
			tup = append(tup, p.value(0))
			if p.err != nil {
				return nil, p.err
			}
			p.skipSpace()
		}
		v = tup
	}
	if p.pos != len(p.src) {
		return nil, errors.New("literal eval: trailing text")
	}
	return v, nil
}

// lenientParser reads JSON-ish text. In strict mode (Python literals) it
// records an error instead of guessing.
type lenientParser struct {
	src    string
	pos    int
	strict bool
	err    error
}

func (p *lenientParser) fail(msg string) any {
	if p.err == nil {
		p.err = errors.New("literal eval: " + msg)
	}
	p.pos = len(p.src)
	return nil
}

func (p *lenientParser) skipSpace() {
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.pos++
		case !p.strict && strings.HasPrefix(p.src[p.pos:], "//"):
			end := strings.IndexByte(p.src[p.pos:], '\n')
			if end < 0 {
				p.pos = len(p.src)
			} else {
				p.pos += end
			}
		case !p.strict && strings.HasPrefix(p.src[p.pos:], "/*"):
			end := strings.Index(p.src[p.pos+2:], "*/")
			if end < 0 {
				p.pos = len(p.src)
			} else {
				p.pos += end + 4
			}
		default:
			return
		}
	}
}

func (p *lenientParser) value(depth int) any {
	if depth > maxLenientDepth {
		return p.fail("too deeply nested")
	}
	p.skipSpace()
	if p.pos >= len(p.src) {
		if p.strict {
			return p.fail("unexpected end")
		}
		return ""
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		p.pos++
		return p.object(depth)
	case c == '[':
		p.pos++
		return p.array(depth, ']')
	case c == '(' && p.strict:
		p.pos++
		if list, ok := p.array(depth, ')').([]any); ok {
			return pyTuple(list)
		}
		return nil
	case c == '"' || c == '\'':
		return p.str()
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return p.word()
	}
}

func (p *lenientParser) object(depth int) any {
	m := NewMap()
	for {
		p.skipSpace()
		if p.pos >= len(p.src) {
			if p.strict {
				return p.fail("unclosed {")
			}
			return m
		}
		switch p.src[p.pos] {
		case '}':
			p.pos++
			return m
		case ',':
			p.pos++
			continue
		}
		var key string
		if c := p.src[p.pos]; c == '"' || c == '\'' {
			key = pyStr(p.str())
		} else if p.strict {
			k := p.value(depth + 1)
			key = pyStr(k)
		} else {
			end := strings.IndexAny(p.src[p.pos:], ":,}")
			if end < 0 {
				end = len(p.src) - p.pos
			}
			key = strings.TrimSpace(p.src[p.pos : p.pos+end])
			p.pos += end
		}
		p.skipSpace()
		if p.pos < len(p.src) && p.src[p.pos] == ':' {
			p.pos++
		} else if p.strict {
			return p.fail("expected :")
		}
		p.skipSpace()
		var v any = ""
		if p.pos < len(p.src) && p.src[p.pos] != ',' && p.src[p.pos] != '}' {
			v = p.value(depth + 1)
		}
		m.Set(key, v)
		if p.err != nil {
			return nil
		}
	}
}

func (p *lenientParser) array(depth int, closer byte) any {
	list := []any{}
	for {
		p.skipSpace()
		if p.pos >= len(p.src) {
			if p.strict {
				return p.fail("unclosed bracket")
			}
			return list
		}
		switch c := p.src[p.pos]; {
		case c == closer:
			p.pos++
			return list
		case c == ',':
			p.pos++
			continue
		case c == '}' || c == ']' || c == ')':
			if p.strict {
				return p.fail("mismatched bracket")
			}
			p.pos++ // a stray closer: json_repair drops it
			return list
		}
		list = append(list, p.value(depth+1))
		if p.err != nil {
			return nil
		}
	}
}

// str reads a quoted string with JSON/Python escapes; an unterminated string
// runs to the end of the text.
func (p *lenientParser) str() any {
	q := p.src[p.pos]
	p.pos++
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == q:
			p.pos++
			return b.String()
		case c == '\\' && p.pos+1 < len(p.src):
			p.escape(&b)
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	if p.strict {
		return p.fail("unterminated string")
	}
	return b.String()
}

func (p *lenientParser) escape(b *strings.Builder) {
	e := p.src[p.pos+1]
	p.pos += 2
	switch e {
	case 'n':
		b.WriteByte('\n')
	case 't':
		b.WriteByte('\t')
	case 'r':
		b.WriteByte('\r')
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'u':
		r, ok := p.hex4()
		if !ok {
			b.WriteString(`\u`)
			return
		}
		if utf16.IsSurrogate(r) && strings.HasPrefix(p.src[p.pos:], `\u`) {
			save := p.pos
			p.pos += 2
			if r2, ok := p.hex4(); ok {
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					b.WriteRune(d)
					return
				}
			}
			p.pos = save
		}
		b.WriteRune(r)
	default:
		b.WriteByte(e)
	}
}

func (p *lenientParser) hex4() (rune, bool) {
	if p.pos+4 > len(p.src) {
		return 0, false
	}
	n, err := strconv.ParseUint(p.src[p.pos:p.pos+4], 16, 32)
	if err != nil {
		return 0, false
	}
	p.pos += 4
	return rune(n), true
}

func (p *lenientParser) number() any {
	start := p.pos
	for p.pos < len(p.src) && strings.IndexByte("0123456789+-.eE_", p.src[p.pos]) >= 0 {
		p.pos++
	}
	text := p.src[start:p.pos]
	clean := strings.ReplaceAll(strings.TrimPrefix(text, "+"), "_", "")
	if !strings.ContainsAny(clean, ".eE") {
		if i, err := strconv.ParseInt(clean, 10, 64); err == nil {
			return i
		}
	}
	if f, err := strconv.ParseFloat(clean, 64); err == nil {
		return f
	}
	if p.strict {
		return p.fail("bad number")
	}
	return text
}

// word reads a bare word: a literal (true, True, null, None, …) or, when
// lenient, an unquoted string running to the next delimiter.
func (p *lenientParser) word() any {
	start := p.pos
	for p.pos < len(p.src) {
		r, n := utf8.DecodeRuneInString(p.src[p.pos:])
		if !isWordRune(r) {
			break
		}
		p.pos += n
	}
	switch w := p.src[start:p.pos]; w {
	case "True", "true":
		return true
	case "False", "false":
		return false
	case "null":
		return nil
	case "None":
		// json_repair (0.61.7, as DSPy's vectors record it) matches only
		// "null" and reads a bare None as the unquoted string "None".
		if p.strict {
			return nil
		}
	case "NaN":
		if !p.strict {
			return nanValue()
		}
	case "Infinity":
		if !p.strict {
			return infValue()
		}
	}
	if p.strict {
		return p.fail("not a literal")
	}
	end := strings.IndexAny(p.src[start:], ",}]\n")
	if end < 0 {
		end = len(p.src) - start
	}
	if start+end <= p.pos && p.pos == start {
		// Not even one word character: skip the stray byte.
		p.pos = start + 1
		return ""
	}
	p.pos = start + end
	return strings.TrimSpace(p.src[start : start+end])
}

func nanValue() any { return math.NaN() }

func infValue() any { return math.Inf(1) }
