package program

import (
	"unicode/utf8"
)

// fieldStream receives an LM completion as deltas and emits the chunks of
// one output field's value. Chunks concatenate to exactly the value the
// adapter's Parse returns for that field.
type fieldStream interface {
	// write feeds the next delta of the completion.
	write(delta string)
	// close marks the end of the completion and flushes what was held.
	close()
}

// chunkSink collects output and hands it on in whole runes: a trailing
// incomplete UTF-8 sequence waits for its continuation bytes.
type chunkSink struct {
	emit func(string)
	buf  []byte
}

func (s *chunkSink) add(b []byte) { s.buf = append(s.buf, b...) }

func (s *chunkSink) addString(str string) { s.buf = append(s.buf, str...) }

// flush emits the buffered output; with final unset, an incomplete rune at
// the end is kept for later.
func (s *chunkSink) flush(final bool) {
	n := len(s.buf)
	if !final {
		n = completeRunesLen(s.buf)
	}
	if n == 0 {
		return
	}
	s.emit(string(s.buf[:n]))
	s.buf = append(s.buf[:0], s.buf[n:]...)
}

// completeRunesLen returns the length of b without a trailing incomplete
// UTF-8 sequence.
func completeRunesLen(b []byte) int {
	for k := 1; k <= utf8.UTFMax && k <= len(b); k++ {
		start := len(b) - k
		if utf8.RuneStart(b[start]) {
			if !utf8.FullRune(b[start:]) {
				return start
			}
			break
		}
	}
	return len(b)
}

// valueWriter applies DSPy's final strip() to a value as it streams: leading
// whitespace is dropped, inner whitespace is held until a non-space
// character proves it is not trailing.
type valueWriter struct {
	sink    *chunkSink
	started bool
	held    []byte
}

func (w *valueWriter) writeRune(r rune, b []byte) {
	if isValidRune(r, len(b)) && pyIsSpace(r) {
		if w.started {
			w.held = append(w.held, b...)
		}
		return
	}
	w.sink.add(w.held)
	w.held = w.held[:0]
	w.sink.add(b)
	w.started = true
}

func (w *valueWriter) writeString(s string) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		w.writeRune(r, []byte(s[i:i+n]))
		i += n
	}
}

// dropHeld forgets held whitespace (it was trailing).
func (w *valueWriter) dropHeld() { w.held = w.held[:0] }

// Chat listener states.
const (
	chatSeeking = iota // before the field's header
	chatInField        // inside the field's section
	chatDone           // past the field's section
)

// Kinds of the current line.
const (
	lineUndecided  = iota // could still be a header line
	lineSkip              // outside the field, or a header that ended it
	lineContent           // a content line of the field
	lineHeaderRest        // the field's own header line: its text after the marker
)

// chatFieldStream is the exact-concatenation listener for ChatAdapter
// output. It runs ChatAdapter.Parse's rules incrementally: Python
// splitlines boundaries ("\r\n" once), headers only at the start of a
// stripped line, the first section of the field wins, lines joined with
// "\n", the value stripped. Only text that might still be a header, or
// whitespace that might still be trailing, is held back.
type chatFieldStream struct {
	field    string
	sink     chunkSink
	value    valueWriter
	state    int
	kind     int
	line     []byte // the current line while undecided
	match    headerMatcher
	partial  []byte // an incomplete UTF-8 sequence from the last delta
	scratch  []byte // the delta being fed, after partial
	prevCR   bool
	lineOpen bool // the current line has at least one character or started
}

func newChatFieldStream(field string, emit func(string)) *chatFieldStream {
	s := &chatFieldStream{field: field}
	s.sink.emit = emit
	s.value.sink = &s.sink
	return s
}

func (s *chatFieldStream) write(delta string) {
	// One buffer for every delta: what feed is given it copies.
	s.scratch = append(append(s.scratch[:0], s.partial...), delta...)
	n := completeRunesLen(s.scratch)
	s.partial = append(s.partial[:0], s.scratch[n:]...)
	s.feed(s.scratch[:n])
	s.sink.flush(false)
}

func (s *chatFieldStream) close() {
	// Bytes of a sequence that never completed are single invalid
	// characters, as the parser decodes them.
	for _, b := range s.partial {
		s.feedRune(utf8.RuneError, []byte{b})
	}
	s.partial = nil
	if s.lineOpen {
		s.endLine(false)
	}
	s.value.dropHeld()
	s.sink.flush(true)
}

func (s *chatFieldStream) feed(data []byte) {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		s.feedRune(r, data[i:i+n])
		i += n
	}
}

func (s *chatFieldStream) feedRune(r rune, b []byte) {
	if isValidRune(r, len(b)) && pyIsLineBreak(r) {
		if r == '\n' && s.prevCR {
			s.prevCR = false
			return
		}
		s.prevCR = r == '\r'
		s.endLine(true)
		return
	}
	s.prevCR = false
	s.lineOpen = true
	if s.state == chatDone {
		return
	}
	switch s.kind {
	case lineSkip:
	case lineContent, lineHeaderRest:
		s.value.writeRune(r, b)
	default:
		s.line = append(s.line, b...)
		s.decide(r, b)
	}
}

// headerMatcher recognises "[[ ## name ## ]]" at the start of a stripped
// line one rune at a time, as headerPattern would: the name is one or more
// word runes and ends at the first other rune, which must begin " ## ]]".
type headerMatcher struct {
	phase     int // 0: leading space, 1: "[[ ## ", 2: name, 3: " ## ]]", 4: matched, 5: failed
	pos       int // bytes of the current literal matched
	name      []byte
	nameRunes int
}

const (
	headerOpen  = "[[ ## "
	headerClose = " ## ]]"
)

// next feeds one rune and reports whether the line is still a candidate.
func (m *headerMatcher) next(r rune, b []byte) {
	valid := isValidRune(r, len(b))
	switch m.phase {
	case 0:
		if valid && pyIsSpace(r) {
			return
		}
		m.phase = 1
		fallthrough
	case 1:
		m.literal(headerOpen, b, 2)
	case 2:
		if valid && isWordRune(r) {
			m.name = append(m.name, b...)
			m.nameRunes++
			return
		}
		if m.nameRunes == 0 {
			m.phase = 5
			return
		}
		m.phase = 3
		m.literal(headerClose, b, 4)
	case 3:
		m.literal(headerClose, b, 4)
	}
}

func (m *headerMatcher) literal(lit string, b []byte, done int) {
	if len(b) != 1 || lit[m.pos] != b[0] {
		m.phase = 5
		return
	}
	m.pos++
	if m.pos == len(lit) {
		m.phase, m.pos = done, 0
	}
}

// markerRunes is the length of the matched marker in runes.
func (m *headerMatcher) markerRunes() int {
	return len(headerOpen) + m.nameRunes + len(headerClose)
}

// decide classifies the current undecided line as soon as its stripped
// start either completes a header marker or cannot become one.
func (s *chatFieldStream) decide(r rune, b []byte) {
	s.match.next(r, b)
	switch s.match.phase {
	case 4:
		name := string(s.match.name)
		switch {
		case s.state == chatSeeking && name == s.field:
			s.state = chatInField
			s.kind = lineHeaderRest
			// DSPy takes the text after the match end, an offset into
			// the stripped line, counted in the unstripped line.
			s.value.writeString(dropRunes(string(s.line), s.match.markerRunes()))
		case s.state == chatInField:
			s.state = chatDone
			s.kind = lineSkip
		default:
			s.kind = lineSkip
		}
		s.line = s.line[:0]
	case 5:
		if s.state == chatInField {
			s.kind = lineContent
			s.value.writeString(string(s.line))
		} else {
			s.kind = lineSkip
		}
		s.line = s.line[:0]
	}
}

// endLine finishes the current line; more says whether a line boundary
// (rather than the end of the text) ended it.
func (s *chatFieldStream) endLine(more bool) {
	if s.state == chatInField {
		if s.kind == lineUndecided {
			// A finished line whose start never completed a marker is
			// content.
			s.value.writeString(string(s.line))
		}
		if s.kind == lineHeaderRest {
			// The header line's remainder is stripped on its own.
			s.value.dropHeld()
		}
		if more {
			s.value.writeRune('\n', []byte{'\n'})
		}
	}
	s.kind = lineUndecided
	s.line = s.line[:0]
	s.match = headerMatcher{name: s.match.name[:0]}
	s.lineOpen = false
}
