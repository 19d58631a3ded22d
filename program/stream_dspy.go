package program

import (
	"regexp"
	"strings"
)

// StreamResponse is one chunk from DSPy's StreamListener.
type StreamResponse struct {
	// Field is the output field the chunk belongs to.
	Field string
	// Chunk is the text.
	Chunk string
	// IsLastChunk marks the end of the field.
	IsLastChunk bool
}

// DSPyChatListener reproduces DSPy 3.3.1's StreamListener for ChatAdapter
// output, quirks included: a leading "\n" chunk, text lost after "[[" in a
// value, nothing at all when the whole field arrives in one chunk. It exists
// for compatibility checks; runs use the exact listener, whose chunks
// concatenate to the parsed value.
type DSPyChatListener struct {
	field       string
	startID     string
	startQueue  []string
	endQueue    []string
	cacheHit    bool
	streamStart bool
	streamEnd   bool
}

// dspyEndIdentifier is the ChatAdapter end identifier.
var dspyEndIdentifier = regexp.MustCompile(`\[\[ ## ([\p{L}\p{N}_]+) ## \]\]`)

// NewDSPyChatListener returns a listener for field.
func NewDSPyChatListener(field string) *DSPyChatListener {
	return &DSPyChatListener{field: field, startID: "[[ ## " + field + " ## ]]"}
}

// CacheHit reports whether the whole field arrived in one chunk.
func (l *DSPyChatListener) CacheHit() bool { return l.cacheHit }

// Started reports whether the field's marker was seen.
func (l *DSPyChatListener) Started() bool { return l.streamStart }

// Ended reports whether the field ended.
func (l *DSPyChatListener) Ended() bool { return l.streamEnd }

// Receive handles one chunk's text and returns what DSPy would yield, or
// nil.
func (l *DSPyChatListener) Receive(text string) *StreamResponse {
	if l.streamEnd {
		return nil
	}
	if i := strings.Index(text, l.startID); i >= 0 {
		if dspyEndIdentifier.MatchString(text[i+len(l.startID):]) {
			l.cacheHit, l.streamStart, l.streamEnd = true, true, true
			return nil
		}
	}
	if len(l.startQueue) == 0 && !l.streamStart && strings.Contains(text, "[") {
		l.startQueue = append(l.startQueue, text)
		return nil
	}
	if len(l.startQueue) > 0 && !l.streamStart {
		l.startQueue = append(l.startQueue, text)
		concat := strings.Join(l.startQueue, "")
		if i := strings.Index(concat, l.startID); i >= 0 {
			l.streamStart = true
			l.startQueue = nil
			text = pyLStrip(concat[i+len(l.startID):])
		} else if endsWithPrefixOf(pyStrip(concat), l.startID) {
			return nil
		} else {
			l.startQueue = nil
			return nil
		}
	}
	if !l.streamStart || text == "" {
		return nil
	}
	l.endQueue = append(l.endQueue, text)
	token := ""
	buf := pyStrip(strings.Join(l.endQueue, ""))
	switch {
	case !couldFormEndIdentifier(buf):
		token = l.flush()
	case len(l.endQueue) > 10:
		token = l.endQueue[0]
		l.endQueue = l.endQueue[1:]
	}
	if dspyEndIdentifier.MatchString(pyStrip(strings.Join(l.endQueue, ""))) {
		l.streamEnd = true
		token = pyRStrip(token + l.flush())
	}
	if token != "" || l.streamEnd {
		return &StreamResponse{Field: l.field, Chunk: token, IsLastChunk: l.streamEnd}
	}
	return nil
}

// Finalize flushes what is left when the prediction arrives.
func (l *DSPyChatListener) Finalize() *StreamResponse {
	if !l.streamStart || l.streamEnd {
		return nil
	}
	l.streamEnd = true
	if last := l.flush(); last != "" {
		return &StreamResponse{Field: l.field, Chunk: last, IsLastChunk: true}
	}
	return nil
}

// flush empties the queue and returns its text up to the first "[[".
func (l *DSPyChatListener) flush() string {
	s := strings.Join(l.endQueue, "")
	l.endQueue = nil
	if i := strings.Index(s, "[["); i >= 0 {
		return s[:i]
	}
	return s
}

// couldFormEndIdentifier is DSPy's check that buffered text may still turn
// into a "[[ ## x ## ]]" marker.
func couldFormEndIdentifier(s string) bool {
	for _, suffix := range []string{"[", "[[", "[[ ", "[[ #", "[[ ##"} {
		if strings.HasSuffix(s, suffix) {
			return true
		}
	}
	return strings.Contains(s, "[[ ##")
}

// endsWithPrefixOf reports whether some non-empty suffix of s is a prefix
// of id.
func endsWithPrefixOf(s, id string) bool {
	for i := len(s) - 1; i >= 0; i-- {
		if strings.HasPrefix(id, s[i:]) {
			return true
		}
	}
	return false
}
