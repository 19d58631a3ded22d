package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/qaqueue/qaqueue/jobs"
)

// The batch upload decoder: JSONL (one {"custom_id"?, "question"} object per
// line) or a JSON array of them, read as a stream — memory grows with the
// items kept, not with the body — and validated whole: every problem is
// collected (up to maxBatchProblems) before anything is stored.

// maxBatchProblems is how many problems a 422 lists.
const maxBatchProblems = 100

// maxCustomIDChars bounds a custom_id.
const maxCustomIDChars = 256

// batchProblem is one reason an upload was refused. Line is the 1-based line
// of a JSONL upload, or the 1-based item number of a JSON array.
type batchProblem struct {
	Line   int    `json:"line"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// batchLimits are what an upload is checked against.
type batchLimits struct {
	MaxItems         int
	MaxQuestionChars int
}

// errTooManyItems is an upload over BATCH_MAX_ITEMS.
type errTooManyItems struct{ limit int }

func (e errTooManyItems) Error() string {
	return fmt.Sprintf("batch has more than BATCH_MAX_ITEMS (%d) items", e.limit)
}

// batchDecoder collects items and problems.
type batchDecoder struct {
	lim      batchLimits
	items    []jobs.BatchItem
	problems []batchProblem
	seen     map[string]int // custom_id → line
	count    int            // items read, valid or not
}

func newBatchDecoder(lim batchLimits) *batchDecoder {
	return &batchDecoder{lim: lim, seen: map[string]int{}}
}

func (d *batchDecoder) problem(line int, field, reason string) {
	if len(d.problems) < maxBatchProblems {
		d.problems = append(d.problems, batchProblem{Line: line, Field: field, Reason: reason})
	}
}

// full reports that enough problems were found to stop reading.
func (d *batchDecoder) full() bool { return len(d.problems) >= maxBatchProblems }

// decodeBatchUpload reads an upload from r: a JSON array when its first
// non-space byte is '[', else JSONL. It returns the items, or the problems
// (nil error), or an errTooManyItems, or the reader's error (an
// *http.MaxBytesError for an upload over BATCH_MAX_BYTES).
func decodeBatchUpload(r io.Reader, lim batchLimits) ([]jobs.BatchItem, []batchProblem, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	d := newBatchDecoder(lim)
	first, err := firstNonSpace(br)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	if first == '[' {
		err = d.array(br)
	} else {
		err = d.jsonl(br)
	}
	if err != nil {
		return nil, nil, err
	}
	if len(d.items) == 0 && len(d.problems) == 0 {
		d.problem(0, "", "the upload has no items")
	}
	if len(d.problems) > 0 {
		return nil, d.problems, nil
	}
	return d.items, nil, nil
}

func firstNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}

// jsonl reads one object per line; blank lines are skipped (but counted).
func (d *batchDecoder) jsonl(br *bufio.Reader) error {
	for line := 1; !d.full(); line++ {
		raw, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if t := bytes.TrimSpace(raw); len(t) > 0 {
			if ierr := d.item(line, t); ierr != nil {
				return ierr
			}
		}
		if err != nil {
			return nil
		}
	}
	return nil
}

// array reads a JSON array of objects.
func (d *batchDecoder) array(br *bufio.Reader) error {
	dec := json.NewDecoder(br)
	if _, err := dec.Token(); err != nil { // the '['
		return readErr(err, func(reason string) { d.problem(1, "", reason) })
	}
	n := 0
	for dec.More() && !d.full() {
		n++
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return readErr(err, func(reason string) { d.problem(n, "", reason) })
		}
		if err := d.item(n, raw); err != nil {
			return err
		}
	}
	if d.full() {
		return nil
	}
	if _, err := dec.Token(); err != nil { // the ']'
		return readErr(err, func(reason string) { d.problem(n+1, "", reason) })
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var se *json.SyntaxError
		if err != nil && !errors.As(err, &se) {
			return readErr(err, func(reason string) { d.problem(n+1, "", reason) })
		}
		d.problem(n+1, "", "unexpected data after the JSON array")
	}
	return nil
}

// readErr turns a decode error into a problem; reader errors (limits, a
// broken connection) are returned.
func readErr(err error, problem func(string)) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se), errors.As(err, &te):
		problem("invalid JSON: " + err.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		problem("invalid JSON: unexpected end of input")
	default:
		return err
	}
	return nil
}

// item validates one item; only errTooManyItems is returned.
func (d *batchDecoder) item(line int, raw []byte) error {
	if d.count++; d.count > d.lim.MaxItems {
		return errTooManyItems{limit: d.lim.MaxItems}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			d.problem(line, "", "each item must be a JSON object")
		} else {
			d.problem(line, "", "invalid JSON: "+err.Error())
		}
		return nil
	}
	ok := true
	for k := range m {
		if k != "question" && k != "custom_id" {
			d.problem(line, k, "unknown field (allowed: custom_id, question)")
			ok = false
		}
	}
	q, reason := d.question(m["question"])
	if reason != "" {
		d.problem(line, "question", reason)
		ok = false
	}
	cid := strconv.Itoa(line)
	if raw, present := m["custom_id"]; present {
		if err := json.Unmarshal(raw, &cid); err != nil || cid == "" || utf8.RuneCountInString(cid) > maxCustomIDChars {
			d.problem(line, "custom_id", fmt.Sprintf("must be a string of 1 to %d characters", maxCustomIDChars))
			ok = false
			cid = ""
		}
	}
	if cid != "" {
		if other, dup := d.seen[cid]; dup {
			d.problem(line, "custom_id", fmt.Sprintf("duplicate custom_id %q (first on line %d)", cid, other))
			ok = false
		} else {
			d.seen[cid] = line
		}
	}
	if ok {
		d.items = append(d.items, jobs.BatchItem{CustomID: cid, Question: q})
	}
	return nil
}

func (d *batchDecoder) question(raw json.RawMessage) (string, string) {
	if raw == nil {
		return "", "missing"
	}
	var q string
	if err := json.Unmarshal(raw, &q); err != nil {
		return "", "must be a string"
	}
	n := utf8.RuneCountInString(q)
	switch {
	case n < 1:
		return "", "must not be empty"
	case n > d.lim.MaxQuestionChars:
		return "", fmt.Sprintf("longer than MAX_QUESTION_CHARS (%d characters, got %d)", d.lim.MaxQuestionChars, n)
	}
	return q, ""
}
