package api

import (
	"fmt"
	"strings"
	"testing"
)

// TestBatchLineCapLeavesOutTheEndOfLine: the line cap measures a line
// without its end, "\n" or "\r\n" alike (a file saved on Windows is not a
// byte shorter per line), including a first line whose '\r' ends the
// reader's 64 KiB buffer and whose '\n' starts the next read.
func TestBatchLineCapLeavesOutTheEndOfLine(t *testing.T) {
	t.Parallel()
	// A line cap of 65,535 bytes: a first line that long fills the reader's
	// buffer with its '\r'.
	lim := batchLimits{MaxItems: 10, MaxQuestionChars: 1 << 20, MaxInputBytes: 65535 - batchEnvelopeBytes}
	line := func(n int) string { // a JSONL item of n bytes, its inputs of MAX_INPUT_BYTES
		q := `{"question":"` + strings.Repeat("q", lim.MaxInputBytes-len(`{"question":""}`)) + `"`
		return q + strings.Repeat(" ", n-len(q)-1) + "}"
	}
	at, over := line(lim.maxLine()), line(lim.maxLine()+1)
	for _, c := range []struct {
		name, body string
		problem    int // the line refused, 0 for none
	}{
		{"LF at the cap", at + "\n" + at + "\n", 0},
		{"CRLF at the cap", at + "\r\n" + at + "\r\n", 0},
		{"CRLF at the cap, no end of file newline", at + "\r\n" + at, 0},
		{"LF over the cap", at + "\n" + over + "\n", 2},
		{"CRLF over the cap", at + "\r\n" + over + "\r\n", 2},
		{"CRLF over the cap, first line", over + "\r\n" + at + "\r\n", 1},
	} {
		items, problems, err := decodeAll(strings.NewReader(c.body), lim)
		got := 0
		if len(problems) > 0 {
			got = problems[0].Line
		}
		if err != nil || got != c.problem || len(problems) > 1 || c.problem == 0 && len(items) != 2 {
			t.Errorf("%s: %d items, problems %s, error %v; want the line refused: %d", c.name, len(items), fmt.Sprint(problems), err, c.problem)
		}
	}
}
