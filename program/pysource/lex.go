package pysource

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxDepth is the deepest bracket nesting (and forward-reference nesting)
// the reader accepts. Real signature files stay under five; the cap bounds
// the parser's recursion on hostile input.
const MaxDepth = 64

type tokKind int

const (
	tName tokKind = iota
	tNumber
	tString
	tOp
)

// token is one Python token. For strings, text is the decoded value and
// fstring/bytes say what prefix it had.
type token struct {
	kind      tokKind
	text      string
	line, col int
	fstring   bool
	bytes     bool
}

// logicalLine is one Python logical line: the tokens of a statement, with
// the indentation of its first physical line.
type logicalLine struct {
	indent int
	toks   []token
}

// lexer splits source into logical lines, following Python's rules for
// brackets, backslash continuations, comments and string literals.
type lexer struct {
	file      string
	src       string
	pos       int
	line, col int
	brackets  []token // open brackets, innermost last
	lines     []logicalLine
	cur       *logicalLine
	indent    int // of the current logical line
}

// lex tokenizes src. Line and col are those of the start of src in the file
// (forward references are lexed from inside a string).
func lex(file, src string, line, col int) ([]logicalLine, error) {
	lx := &lexer{file: file, src: src, line: line, col: col}
	if err := lx.run(); err != nil {
		return nil, err
	}
	return lx.lines, nil
}

func (lx *lexer) errorf(line, col int, format string, args ...any) *Error {
	return errorf(lx.file, line, col, format, args...)
}

func (lx *lexer) advance(n int) {
	for i := 0; i < n; i++ {
		if lx.src[lx.pos] == '\n' {
			lx.line++
			lx.col = 1
		} else {
			lx.col++
		}
		lx.pos++
	}
}

func (lx *lexer) emit(t token) {
	if lx.cur == nil {
		lx.lines = append(lx.lines, logicalLine{indent: lx.indent})
		lx.cur = &lx.lines[len(lx.lines)-1]
	}
	lx.cur.toks = append(lx.cur.toks, t)
}

func (lx *lexer) run() error {
	atLineStart := true
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		if atLineStart && len(lx.brackets) == 0 {
			lx.indent = lx.indentation()
			atLineStart = false
			continue
		}
		switch {
		case c == ' ' || c == '\t' || c == '\f':
			lx.advance(1)
		case c == '#':
			for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' {
				lx.advance(1)
			}
		case c == '\\':
			rest := lx.src[lx.pos+1:]
			if !strings.HasPrefix(rest, "\n") && !strings.HasPrefix(rest, "\r\n") {
				return lx.errorf(lx.line, lx.col, "unexpected character after line continuation")
			}
			lx.advance(1)
			if lx.src[lx.pos] == '\r' {
				lx.advance(1)
			}
			lx.advance(1)
		case c == '\r' || c == '\n':
			lx.advance(1)
			if len(lx.brackets) == 0 {
				lx.cur = nil
				atLineStart = true
			}
		case c == '"' || c == '\'':
			if err := lx.str(""); err != nil {
				return err
			}
		case c >= '0' && c <= '9' || c == '.' && lx.pos+1 < len(lx.src) && isDigit(lx.src[lx.pos+1]):
			lx.number()
		case c >= utf8.RuneSelf || c == '_' || unicode.IsLetter(rune(c)):
			if err := lx.name(); err != nil {
				return err
			}
		default:
			if err := lx.op(); err != nil {
				return err
			}
		}
	}
	if n := len(lx.brackets); n > 0 {
		b := lx.brackets[n-1]
		return lx.errorf(b.line, b.col, "%q is never closed", b.text)
	}
	return nil
}

// indentation consumes the leading white space of a physical line and
// returns its width (tabs to the next multiple of 8, as Python counts).
func (lx *lexer) indentation() int {
	width := 0
	for lx.pos < len(lx.src) {
		switch lx.src[lx.pos] {
		case ' ':
			width++
		case '\t':
			width = width/8*8 + 8
		case '\f':
			width = 0
		default:
			return width
		}
		lx.advance(1)
	}
	return width
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isNameRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

func (lx *lexer) name() error {
	start, line, col := lx.pos, lx.line, lx.col
	for lx.pos < len(lx.src) {
		r, n := utf8.DecodeRuneInString(lx.src[lx.pos:])
		if !isNameRune(r) || r == utf8.RuneError && n == 1 {
			break
		}
		lx.pos += n
		lx.col++
	}
	if lx.pos == start {
		return lx.errorf(line, col, "unexpected character %q", lx.src[start:start+1])
	}
	word := lx.src[start:lx.pos]
	if lx.pos < len(lx.src) && (lx.src[lx.pos] == '"' || lx.src[lx.pos] == '\'') && isStringPrefix(word) {
		lx.pos, lx.line, lx.col = start, line, col
		lx.advance(len(word))
		return lx.str(strings.ToLower(word))
	}
	lx.emit(token{kind: tName, text: word, line: line, col: col})
	return nil
}

func isStringPrefix(p string) bool {
	switch strings.ToLower(p) {
	case "r", "u", "b", "br", "rb", "f", "fr", "rf", "t", "tr", "rt":
		return true
	}
	return false
}

func (lx *lexer) number() {
	start, line, col := lx.pos, lx.line, lx.col
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		if isDigit(c) || c == '.' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			lx.advance(1)
			continue
		}
		prev := lx.src[lx.pos-1]
		hex := strings.HasPrefix(strings.ToLower(lx.src[start:]), "0x")
		if (c == '+' || c == '-') && (prev == 'e' || prev == 'E') && !hex {
			lx.advance(1)
			continue
		}
		break
	}
	lx.emit(token{kind: tNumber, text: lx.src[start:lx.pos], line: line, col: col})
}

// threeCharOps and twoCharOps are the multi-character operators, so that
// "==" is never read as "=".
var threeCharOps = []string{"...", "**=", "//=", ">>=", "<<="}
var twoCharOps = []string{"->", "==", "!=", "<=", ">=", ":=", "**", "//", "<<", ">>",
	"+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@="}

func (lx *lexer) op() error {
	line, col := lx.line, lx.col
	rest := lx.src[lx.pos:]
	for _, group := range [][]string{threeCharOps, twoCharOps} {
		for _, op := range group {
			if strings.HasPrefix(rest, op) {
				lx.advance(len(op))
				lx.emit(token{kind: tOp, text: op, line: line, col: col})
				return nil
			}
		}
	}
	c := rest[0]
	switch c {
	case '(', '[', '{':
		if len(lx.brackets) >= MaxDepth {
			return lx.errorf(line, col, "brackets nested deeper than %d", MaxDepth)
		}
		t := token{kind: tOp, text: string(c), line: line, col: col}
		lx.brackets = append(lx.brackets, t)
		lx.advance(1)
		lx.emit(t)
		return nil
	case ')', ']', '}':
		n := len(lx.brackets)
		if n == 0 || closer(lx.brackets[n-1].text) != c {
			return lx.errorf(line, col, "unmatched %q", string(c))
		}
		lx.brackets = lx.brackets[:n-1]
		lx.advance(1)
		lx.emit(token{kind: tOp, text: string(c), line: line, col: col})
		return nil
	}
	if strings.IndexByte("+-*/%&|^~<>=.,:;@!", c) < 0 {
		return lx.errorf(line, col, "unexpected character %q", string(c))
	}
	lx.advance(1)
	lx.emit(token{kind: tOp, text: string(c), line: line, col: col})
	return nil
}

func closer(open string) byte {
	switch open {
	case "(":
		return ')'
	case "[":
		return ']'
	}
	return '}'
}

// str reads a string literal whose prefix (lower-cased) has been consumed.
func (lx *lexer) str(prefix string) error {
	line, col := lx.line, lx.col-len(prefix)
	body, err := lx.scanString(prefix, line, col, 0)
	if err != nil {
		return err
	}
	t := token{kind: tString, line: line, col: col,
		fstring: strings.ContainsAny(prefix, "ft"), bytes: strings.Contains(prefix, "b")}
	if strings.Contains(prefix, "r") || t.fstring {
		t.text = strings.ReplaceAll(body, "\r\n", "\n")
	} else {
		text, err := unescape(body)
		if err != nil {
			return lx.errorf(line, col, "string: %v", err)
		}
		t.text = text
	}
	lx.emit(t)
	return nil
}

// scanString consumes a string literal from its opening quote and returns
// its body. In an f-string, replacement fields may hold strings of either
// quote (Python 3.12), so they are scanned as expressions; level counts
// f-strings nested in them.
func (lx *lexer) scanString(prefix string, line, col, level int) (string, error) {
	if level > MaxDepth {
		return "", lx.errorf(line, col, "f-strings nested deeper than %d", MaxDepth)
	}
	fstr := strings.ContainsAny(prefix, "ft")
	q := lx.src[lx.pos : lx.pos+1]
	if strings.HasPrefix(lx.src[lx.pos:], q+q+q) {
		q = q + q + q
	}
	lx.advance(len(q))
	start := lx.pos
	for !strings.HasPrefix(lx.src[lx.pos:], q) {
		if lx.pos >= len(lx.src) {
			return "", lx.errorf(line, col, "unterminated string")
		}
		c := lx.src[lx.pos]
		switch {
		case c == '\\' && lx.pos+1 < len(lx.src):
			lx.advance(2)
		case fstr && strings.HasPrefix(lx.src[lx.pos:], "{{"):
			lx.advance(2)
		case fstr && c == '{':
			if err := lx.replacementField(line, col, level); err != nil {
				return "", err
			}
		case (c == '\n' || c == '\r') && len(q) == 1:
			return "", lx.errorf(line, col, "unterminated string")
		default:
			lx.advance(1)
		}
	}
	body := lx.src[start:lx.pos]
	lx.advance(len(q))
	return body, nil
}

// replacementField skips an f-string's {expression[:spec]}, nested
// strings and braces included.
func (lx *lexer) replacementField(line, col, level int) error {
	lx.advance(1)
	for depth := 1; depth > 0; {
		if lx.pos >= len(lx.src) {
			return lx.errorf(line, col, "unterminated string")
		}
		switch c := lx.src[lx.pos]; c {
		case '{':
			depth++
			lx.advance(1)
		case '}':
			depth--
			lx.advance(1)
		case '"', '\'':
			p := lx.pos
			for p > 0 && isStringPrefix(lx.src[p-1:lx.pos]) {
				p--
			}
			if _, err := lx.scanString(strings.ToLower(lx.src[p:lx.pos]), lx.line, lx.col, level+1); err != nil {
				return err
			}
		default:
			lx.advance(1)
		}
	}
	return nil
}

// unescape applies Python's escape sequences to a non-raw string body.
func unescape(s string) (string, error) {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i
			for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			v, _ := strconv.ParseUint(s[i:j], 8, 32)
			b.WriteRune(rune(v))
			i = j - 1
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+1+n > len(s) {
				return "", &escapeError{seq: `\` + s[i:]}
			}
			v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
			if err != nil || v > unicode.MaxRune {
				return "", &escapeError{seq: `\` + s[i:min(len(s), i+1+n)]}
			}
			b.WriteRune(rune(v))
			i += n
		case 'N':
			return "", &escapeError{seq: `\N{...}`}
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), nil
}

type escapeError struct{ seq string }

func (e *escapeError) Error() string { return "unsupported escape " + e.seq }
