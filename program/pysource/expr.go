package pysource

import (
	"strings"
)

type exprKind int

const (
	eName exprKind = iota
	eString
	eNumber
	eEllipsis
	eCall
	eSubscript
	eOr
	eList
	eTuple
	eDict
)

// expr is the small expression tree the reader understands: dotted names,
// literals, calls, subscripts, X | Y, lists, tuples and dicts. Call
// arguments are kept as token runs and parsed only when read, so an
// argument the reader ignores (parser=lambda x: x) never has to parse.
type expr struct {
	kind      exprKind
	line, col int
	text      string // the dotted name, the decoded string or the number's text
	fstring   bool
	bytes     bool
	head      *expr   // the called or subscripted expression
	items     []*expr // subscript arguments, | members, list/tuple items, dict values
	keys      []*expr // dict keys
	args      []arg   // call arguments
}

// arg is one call argument: name is "" for a positional one.
type arg struct {
	name      string
	line, col int
	toks      []token
}

type exprParser struct {
	file string
	toks []token
	i    int
	// endLine/endCol locate the end of the run, for "expected" errors.
	endLine, endCol int
}

func newExprParser(file string, toks []token) *exprParser {
	p := &exprParser{file: file, toks: toks}
	if n := len(toks); n > 0 {
		p.endLine, p.endCol = toks[n-1].line, toks[n-1].col+len(toks[n-1].text)
	}
	return p
}

// parseAll parses toks as one expression and refuses anything left over.
func parseAll(file string, toks []token) (*expr, error) {
	p := newExprParser(file, toks)
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		t := p.toks[p.i]
		return nil, errorf(file, t.line, t.col, "unsupported expression at %q", t.text)
	}
	return e, nil
}

func (p *exprParser) peek() (token, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return token{}, false
}

func (p *exprParser) isOp(s string) bool {
	t, ok := p.peek()
	return ok && t.kind == tOp && t.text == s
}

func (p *exprParser) errHere(format string, args ...any) error {
	if t, ok := p.peek(); ok {
		return errorf(p.file, t.line, t.col, format, args...)
	}
	return errorf(p.file, p.endLine, p.endCol, format, args...)
}

func (p *exprParser) expectOp(s string) error {
	if !p.isOp(s) {
		return p.errHere("expected %q", s)
	}
	p.i++
	return nil
}

func (p *exprParser) parseOr() (*expr, error) {
	first, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	if !p.isOp("|") {
		return first, nil
	}
	or := &expr{kind: eOr, line: first.line, col: first.col, items: []*expr{first}}
	for p.isOp("|") {
		p.i++
		next, err := p.parsePrimary()
		if err != nil {
			return nil, err
		}
		or.items = append(or.items, next)
	}
	return or, nil
}

func (p *exprParser) parsePrimary() (*expr, error) {
	t, ok := p.peek()
	if !ok {
		return nil, p.errHere("expected an expression")
	}
	var e *expr
	var err error
	switch {
	case t.kind == tName:
		e = p.dottedName()
	case t.kind == tString:
		e, err = p.strings()
	case t.kind == tNumber:
		p.i++
		e = &expr{kind: eNumber, line: t.line, col: t.col, text: t.text}
	case t.kind == tOp && t.text == "-":
		p.i++
		n, ok := p.peek()
		if !ok || n.kind != tNumber {
			return nil, errorf(p.file, t.line, t.col, "unsupported expression at %q", t.text)
		}
		p.i++
		e = &expr{kind: eNumber, line: t.line, col: t.col, text: "-" + n.text}
	case t.kind == tOp && t.text == "...":
		p.i++
		e = &expr{kind: eEllipsis, line: t.line, col: t.col}
	case t.kind == tOp && t.text == "(":
		e, err = p.parenthesized()
	case t.kind == tOp && t.text == "[":
		p.i++
		e = &expr{kind: eList, line: t.line, col: t.col}
		e.items, err = p.exprList("]")
	case t.kind == tOp && t.text == "{":
		e, err = p.dict()
	default:
		return nil, errorf(p.file, t.line, t.col, "unsupported expression at %q", t.text)
	}
	if err != nil {
		return nil, err
	}
	return p.trailers(e)
}

// dottedName reads NAME(.NAME)*.
func (p *exprParser) dottedName() *expr {
	t := p.toks[p.i]
	p.i++
	name := t.text
	for p.isOp(".") && p.i+1 < len(p.toks) && p.toks[p.i+1].kind == tName {
		name += "." + p.toks[p.i+1].text
		p.i += 2
	}
	return &expr{kind: eName, line: t.line, col: t.col, text: name}
}

// strings reads adjacent string literals, which Python concatenates.
func (p *exprParser) strings() (*expr, error) {
	first := p.toks[p.i]
	e := &expr{kind: eString, line: first.line, col: first.col, bytes: first.bytes}
	var b strings.Builder
	for {
		t, ok := p.peek()
		if !ok || t.kind != tString {
			break
		}
		if t.bytes != e.bytes {
			return nil, errorf(p.file, t.line, t.col, "cannot mix bytes and str literals")
		}
		e.fstring = e.fstring || t.fstring
		b.WriteString(t.text)
		p.i++
	}
	e.text = b.String()
	return e, nil
}

func (p *exprParser) parenthesized() (*expr, error) {
	open := p.toks[p.i]
	p.i++
	items, trailingComma, err := p.exprListComma(")")
	if err != nil {
		return nil, err
	}
	if len(items) == 1 && !trailingComma {
		return items[0], nil
	}
	return &expr{kind: eTuple, line: open.line, col: open.col, items: items}, nil
}

func (p *exprParser) exprList(close string) ([]*expr, error) {
	items, _, err := p.exprListComma(close)
	return items, err
}

// exprListComma reads "a, b, c" up to close, which it consumes, and says
// whether a comma ended the list.
func (p *exprParser) exprListComma(close string) ([]*expr, bool, error) {
	var items []*expr
	trailing := false
	for !p.isOp(close) {
		e, err := p.parseOr()
		if err != nil {
			return nil, false, err
		}
		items = append(items, e)
		trailing = false
		if !p.isOp(",") {
			break
		}
		p.i++
		trailing = true
	}
	return items, trailing, p.expectOp(close)
}

func (p *exprParser) dict() (*expr, error) {
	open := p.toks[p.i]
	p.i++
	e := &expr{kind: eDict, line: open.line, col: open.col}
	for !p.isOp("}") {
		k, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(":"); err != nil {
			return nil, err
		}
		v, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		e.keys = append(e.keys, k)
		e.items = append(e.items, v)
		if !p.isOp(",") {
			break
		}
		p.i++
	}
	return e, p.expectOp("}")
}

// trailers reads calls and subscripts after a primary: f(...)[...].
func (p *exprParser) trailers(e *expr) (*expr, error) {
	for {
		switch {
		case p.isOp("("):
			args, err := p.callArgs()
			if err != nil {
				return nil, err
			}
			e = &expr{kind: eCall, line: e.line, col: e.col, head: e, args: args}
		case p.isOp("["):
			p.i++
			items, err := p.exprList("]")
			if err != nil {
				return nil, err
			}
			if len(items) == 0 {
				return nil, p.errHere("empty subscript")
			}
			e = &expr{kind: eSubscript, line: e.line, col: e.col, head: e, items: items}
		default:
			return e, nil
		}
	}
}

// callArgs splits the arguments of a call into token runs at the top-level
// commas; the lexer has already checked that the brackets balance.
func (p *exprParser) callArgs() ([]arg, error) {
	open := p.toks[p.i]
	p.i++
	var args []arg
	for {
		start, depth := p.i, 0
		for ; p.i < len(p.toks); p.i++ {
			t := p.toks[p.i]
			if t.kind != tOp {
				continue
			}
			if depth == 0 && (t.text == "," || t.text == ")") {
				break
			}
			switch t.text {
			case "(", "[", "{":
				depth++
			case ")", "]", "}":
				depth--
			}
		}
		if p.i >= len(p.toks) {
			return nil, errorf(p.file, open.line, open.col, "%q is never closed", "(")
		}
		run := p.toks[start:p.i]
		end := p.toks[p.i].text
		p.i++
		if len(run) > 0 {
			a := arg{line: run[0].line, col: run[0].col, toks: run}
			if len(run) >= 2 && run[0].kind == tName && run[1].kind == tOp && run[1].text == "=" {
				a.name, a.toks = run[0].text, run[2:]
			}
			args = append(args, a)
		} else if end == "," {
			return nil, errorf(p.file, p.toks[p.i-1].line, p.toks[p.i-1].col, "unexpected \",\"")
		}
		if end == ")" {
			return args, nil
		}
	}
}
