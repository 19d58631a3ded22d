package program

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// JSON listener states.
const (
	jsSeekObject = iota
	jsExpectKey
	jsInKey
	jsExpectColon
	jsExpectValue
	jsInValue // inside the field's string: streaming
	jsSkipString
	jsSkipNested
	jsSkipScalar
	jsAfterValue
	jsDone
)

// jsonFieldStream streams one field of JSONAdapter output: the unescaped
// contents of the string value of "field" in the first top-level object.
// It covers what LMs send in JSON mode; anything else (a non-string value, a
// duplicate key, text that only lenient parsing accepts) is put right when
// the run reconciles the chunks with the parsed value.
type jsonFieldStream struct {
	field  string
	sink   chunkSink
	state  int
	key    []byte
	keyEsc bool
	esc    []byte // a pending escape sequence, backslash included
	surr   rune   // a high surrogate waiting for its pair
	depth  int    // nesting while skipping a container
	inStr  bool   // inside a string while skipping a container
	strEsc bool
}

func newJSONFieldStream(field string, emit func(string)) *jsonFieldStream {
	s := &jsonFieldStream{field: field}
	s.sink.emit = emit
	return s
}

func (s *jsonFieldStream) write(delta string) {
	for i := 0; i < len(delta) && s.state != jsDone; i++ {
		s.feed(delta[i])
	}
	s.sink.flush(false)
}

func (s *jsonFieldStream) close() {
	if s.surr != 0 {
		s.sink.addString(string(utf8.RuneError))
		s.surr = 0
	}
	s.sink.flush(true)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *jsonFieldStream) feed(c byte) {
	switch s.state {
	case jsSeekObject:
		if c == '{' {
			s.state = jsExpectKey
		}
	case jsExpectKey:
		switch {
		case isJSONSpace(c) || c == ',':
		case c == '"':
			s.key, s.keyEsc, s.state = s.key[:0], false, jsInKey
		default:
			s.state = jsDone // '}' or something only a repair would read
		}
	case jsInKey:
		switch {
		case s.keyEsc:
			s.key, s.keyEsc = append(s.key, c), false
		case c == '\\':
			s.keyEsc = true
		case c == '"':
			s.state = jsExpectColon
		default:
			s.key = append(s.key, c)
		}
	case jsExpectColon:
		switch {
		case isJSONSpace(c):
		case c == ':':
			s.state = jsExpectValue
		default:
			s.state = jsDone
		}
	case jsExpectValue:
		s.startValue(c)
	case jsInValue:
		s.valueByte(c)
	case jsSkipString:
		switch {
		case s.strEsc:
			s.strEsc = false
		case c == '\\':
			s.strEsc = true
		case c == '"':
			s.state = jsAfterValue
		}
	case jsSkipNested:
		s.skipNested(c)
	case jsSkipScalar:
		switch c {
		case ',':
			s.state = jsExpectKey
		case '}':
			s.state = jsDone
		}
	case jsAfterValue:
		switch {
		case isJSONSpace(c):
		case c == ',':
			s.state = jsExpectKey
		default:
			s.state = jsDone
		}
	}
}

func (s *jsonFieldStream) startValue(c byte) {
	switch {
	case isJSONSpace(c):
	case c == '"' && string(s.key) == s.field:
		s.state = jsInValue
	case c == '"':
		s.state, s.strEsc = jsSkipString, false
	case c == '{' || c == '[':
		s.state, s.depth, s.inStr, s.strEsc = jsSkipNested, 1, false, false
	default:
		s.state = jsSkipScalar
	}
}

func (s *jsonFieldStream) skipNested(c byte) {
	switch {
	case s.inStr && s.strEsc:
		s.strEsc = false
	case s.inStr && c == '\\':
		s.strEsc = true
	case s.inStr && c == '"':
		s.inStr = false
	case s.inStr:
	case c == '"':
		s.inStr = true
	case c == '{' || c == '[':
		s.depth++
	case c == '}' || c == ']':
		s.depth--
		if s.depth == 0 {
			s.state = jsAfterValue
		}
	}
}

// valueByte handles one byte of the streamed string, decoding escapes.
func (s *jsonFieldStream) valueByte(c byte) {
	if len(s.esc) > 0 {
		s.esc = append(s.esc, c)
		s.escape()
		return
	}
	switch c {
	case '\\':
		s.esc = append(s.esc[:0], c)
	case '"':
		s.flushSurrogate()
		s.state = jsDone
	default:
		s.flushSurrogate()
		s.sink.add([]byte{c})
	}
}

// escape completes the pending escape sequence once it is whole.
func (s *jsonFieldStream) escape() {
	if len(s.esc) < 2 {
		return
	}
	e := s.esc[1]
	if e != 'u' {
		s.flushSurrogate()
		switch e {
		case 'n':
			s.sink.addString("\n")
		case 't':
			s.sink.addString("\t")
		case 'r':
			s.sink.addString("\r")
		case 'b':
			s.sink.addString("\b")
		case 'f':
			s.sink.addString("\f")
		default:
			s.sink.add([]byte{e})
		}
		s.esc = s.esc[:0]
		return
	}
	if len(s.esc) < 6 {
		return
	}
	n, err := strconv.ParseUint(string(s.esc[2:6]), 16, 32)
	s.esc = s.esc[:0]
	if err != nil {
		s.flushSurrogate()
		s.sink.addString(string(utf8.RuneError))
		return
	}
	r := rune(n)
	switch {
	case s.surr != 0 && r >= 0xdc00 && r <= 0xdfff:
		s.sink.addString(string(utf16.DecodeRune(s.surr, r)))
		s.surr = 0
	case r >= 0xd800 && r <= 0xdbff:
		s.flushSurrogate()
		s.surr = r
	default:
		s.flushSurrogate()
		s.sink.addString(string(r))
	}
}

// flushSurrogate writes a high surrogate that found no pair as U+FFFD, as
// Go's JSON decoding does.
func (s *jsonFieldStream) flushSurrogate() {
	if s.surr != 0 {
		s.sink.addString(string(utf8.RuneError))
		s.surr = 0
	}
}
