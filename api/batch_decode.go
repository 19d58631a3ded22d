package api

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/qaqueue/qaqueue/jobs"
)

// The batch upload decoder: JSONL (one {"custom_id"?, "question"} or
// {"custom_id"?, "inputs"} object per line: the QA program's question, or
// the program's inputs; the batch sets the program and the options) or a
// JSON array of them, read as a stream and validated whole, each item by
// the one decoder of a spec's client part (itemForm): every problem is
// collected (up to maxBatchProblems). Memory does not grow with
// the body: a line (or array item) longer than the line cap is refused while
// it is read, without being kept, and each valid item is handed to a store
// function (batches.Upload.Add) rather than kept — until the first problem,
// after which the upload is only validated, as it will be refused.

// formUploadHint is what both answers to a form upload (curl -F) say: the
// 415 of a multipart Content-Type, and the problem of a body labelled as
// JSONL that starts like one (curl -H 'Content-Type: application/x-ndjson'
// -F …).
const formUploadHint = "a batch is not a form upload (multipart/form-data, curl -F): send the JSONL as the raw body: " +
	"`--data-binary @q.jsonl`, with -H 'Content-Type: application/x-ndjson'"

// maxBatchProblems is how many problems a 422 lists.
const maxBatchProblems = 100

// maxCustomIDChars bounds a custom_id.
const maxCustomIDChars = 256

// batchEnvelopeBytes is how much longer than MAX_INPUT_BYTES a line may be:
// room for a custom_id of maxCustomIDChars characters, each escaped as a
// surrogate pair (\ud83d\ude00, 12 bytes), and the JSON around the inputs.
const batchEnvelopeBytes = 4 << 10

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
	// MaxInputBytes is MAX_INPUT_BYTES: the most bytes one item's inputs
	// may take. A line may be batchEnvelopeBytes longer.
	MaxInputBytes int
	// Program is the batch's program, resolved at create; nil: the
	// built-in QA program.
	Program *resolvedProgram
}

func (l batchLimits) maxLine() int { return l.MaxInputBytes + batchEnvelopeBytes }

// spec is what an item's inputs are validated against: the limits and the
// batch's program.
func (l batchLimits) spec() specRules {
	p := l.Program
	if p == nil {
		p = &builtinQA
	}
	return specRules{lim: jobs.Limits{MaxQuestionChars: l.MaxQuestionChars, MaxInputBytes: l.MaxInputBytes}, batch: p}
}

// errTooManyItems is an upload over BATCH_MAX_ITEMS.
type errTooManyItems struct{ limit int }

func (e errTooManyItems) Error() string {
	return fmt.Sprintf("batch has more than BATCH_MAX_ITEMS (%d) items", e.limit)
}

// errEmptyUpload is an upload without a single item.
type errEmptyUpload struct{ array bool }

func (e errEmptyUpload) Error() string {
	if e.array {
		return "the upload is an empty JSON array: it needs at least one item"
	}
	return "the upload is empty: send one JSON object per line (JSONL), or a JSON array of them"
}

// batchDecoder validates items and stores the valid ones.
type batchDecoder struct {
	lim      batchLimits
	store    func(jobs.BatchItem) error
	problems []batchProblem
	// seen maps each custom_id's hash to its line: 50,000 custom_ids of up
	// to 1 KB would otherwise be kept whole.
	seen  map[[16]byte]int
	count int // items read, valid or not
	valid int
	buf   []byte // a line or array item that spans the reader's buffer
}

func (d *batchDecoder) problem(line int, field, reason string) {
	if len(d.problems) < maxBatchProblems {
		d.problems = append(d.problems, batchProblem{Line: line, Field: field, Reason: reason})
	}
}

// full reports that enough problems were found to stop reading.
func (d *batchDecoder) full() bool { return len(d.problems) >= maxBatchProblems }

// decodeBatchUpload reads an upload from r: a JSON array when its first
// non-space byte is '[', else JSONL. Each valid item is passed to store, in
// order, while no problem has been found. It returns the problems (nil
// error), or an errEmptyUpload, an errTooManyItems, store's error, or the
// reader's (an *http.MaxBytesError for an upload over BATCH_MAX_BYTES).
func decodeBatchUpload(r io.Reader, lim batchLimits, store func(jobs.BatchItem) error) ([]batchProblem, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	d := &batchDecoder{lim: lim, store: store, seen: map[[16]byte]int{}}
	first, err := firstNonSpace(br)
	switch {
	case errors.Is(err, io.EOF):
		return nil, errEmptyUpload{}
	case err != nil:
		return nil, err
	case first == '[':
		err = d.array(br)
	default:
		err = d.jsonl(br)
	}
	switch {
	case err != nil:
		return nil, err
	case len(d.problems) > 0:
		return d.problems, nil
	case d.valid == 0:
		return nil, errEmptyUpload{array: first == '['}
	}
	return nil, nil
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
		raw, over, err := d.line(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if over {
			if ierr := d.tooLong(line); ierr != nil {
				return ierr
			}
		} else if t := bytes.TrimSpace(raw); len(t) > 0 {
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

// line reads the next line, without its '\n'; the slice is valid until the
// next call. A line longer than the line cap (its end, "\n" or "\r\n", left
// out) is read to its end but not kept, and reported with over.
func (d *batchDecoder) line(br *bufio.Reader) (line []byte, over bool, err error) {
	max := d.lim.maxLine()
	d.buf = d.buf[:0]
	n := 0
	var last byte // the last byte of the previous fragment
	for {
		frag, err := br.ReadSlice('\n')
		n += len(frag)
		if n-endOfLine(frag, last, err) > max {
			over, d.buf = true, d.buf[:0]
		}
		if len(frag) > 0 {
			last = frag[len(frag)-1]
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if !over {
				d.buf = append(d.buf, frag...)
			}
			continue
		}
		switch {
		case over:
			return nil, true, err
		case len(d.buf) == 0:
			// The whole line was in the reader's buffer: no copy.
			return bytes.TrimSuffix(frag, []byte("\n")), false, err
		}
		d.buf = append(d.buf, frag...)
		return bytes.TrimSuffix(d.buf, []byte("\n")), false, err
	}
}

// endOfLine is how many bytes at the end of frag, the latest fragment of a
// line (ReadSlice's, with its error), end the line rather than belong to it:
// "\n" or "\r\n" (whose '\r' may have ended the previous fragment, last),
// and while the line goes on a last '\r' that may start one.
func endOfLine(frag []byte, last byte, err error) int {
	switch {
	case err == nil && len(frag) >= 2 && frag[len(frag)-2] == '\r',
		err == nil && len(frag) == 1 && last == '\r':
		return 2
	case err == nil,
		errors.Is(err, bufio.ErrBufferFull) && frag[len(frag)-1] == '\r':
		return 1
	}
	return 0
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tooLong reports an item over the line cap.
func (d *batchDecoder) tooLong(line int) error {
	if d.count++; d.count > d.lim.MaxItems {
		return errTooManyItems{limit: d.lim.MaxItems}
	}
	d.problem(line, "", fmt.Sprintf("longer than %d bytes: MAX_INPUT_BYTES (%d) plus %d for custom_id and the JSON around the inputs",
		d.lim.maxLine(), d.lim.MaxInputBytes, batchEnvelopeBytes))
	return nil
}

// array reads a JSON array of objects. Each item is cut out of the stream
// by a scanner that tracks only strings and brackets, so an item over the
// line cap is never held, and is then decoded alone by item.
func (d *batchDecoder) array(br *bufio.Reader) error {
	if _, err := br.ReadByte(); err != nil { // the '[' firstNonSpace saw
		return err
	}
	n := 0
	for !d.full() {
		c, err := firstNonSpace(br)
		if err != nil {
			return endOfInput(err, func() { d.problem(n+1, "", "invalid JSON: unexpected end of input") })
		}
		if c == ']' && n == 0 {
			_, _ = br.ReadByte()
			break
		}
		n++
		raw, over, end, err := d.arrayItem(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		raw = bytes.TrimSpace(raw)
		switch {
		case over:
			if ierr := d.tooLong(n); ierr != nil {
				return ierr
			}
		case len(raw) == 0:
			d.problem(n, "", "invalid JSON: expected an item")
		default:
			if ierr := d.item(n, raw); ierr != nil {
				return ierr
			}
		}
		switch end {
		case ']':
			return d.afterArray(br, n)
		case 0: // the input ended inside the array
			d.problem(n, "", "invalid JSON: unexpected end of input (the array is not closed)")
			return nil
		}
	}
	if d.full() {
		return nil
	}
	return d.afterArray(br, n)
}

// afterArray checks that nothing but space follows the array.
func (d *batchDecoder) afterArray(br *bufio.Reader, n int) error {
	_, err := firstNonSpace(br)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	d.problem(n+1, "", "unexpected data after the JSON array")
	return nil
}

// endOfInput turns the end of the input into a problem; other reader errors
// (limits, a broken connection) are returned.
func endOfInput(err error, problem func()) error {
	if errors.Is(err, io.EOF) {
		problem()
		return nil
	}
	return err
}

// arrayItem reads one array item up to the ',' or ']' that ends it (outside
// strings and brackets), consuming that byte and returning it as end (0 when
// the input ends first). The item's bytes are valid until the next call; an
// item longer than the line cap is read but not kept, and reported with over.
func (d *batchDecoder) arrayItem(br *bufio.Reader) (raw []byte, over bool, end byte, err error) {
	max := d.lim.maxLine()
	d.buf = d.buf[:0]
	var (
		depth       int
		inStr, esc  bool
		n           int
		chunk, item []byte
	)
	for end == 0 {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				return d.buf, over, 0, err
			}
		}
		chunk, _ = br.Peek(br.Buffered())
		i := 0
	scan:
		for ; i < len(chunk); i++ {
			c := chunk[i]
			switch {
			case esc:
				esc = false
			case inStr:
				esc, inStr = c == '\\', c != '"'
			case c == '"':
				inStr = true
			case c == '{' || c == '[':
				depth++
			case (c == '}' || c == ']') && depth > 0:
				depth--
			case (c == ',' || c == ']') && depth == 0:
				end = c
				break scan
			}
		}
		item = chunk[:i]
		if n += len(item); n > max {
			over, d.buf = true, d.buf[:0]
		}
		if !over {
			d.buf = append(d.buf, item...)
		}
		_, _ = br.Discard(i + btoi(end != 0))
	}
	return d.buf, over, end, nil
}

// item validates one item and stores it if it is valid and the upload has
// no problem so far. It returns errTooManyItems or the store's error.
func (d *batchDecoder) item(line int, raw []byte) error {
	if d.count++; d.count > d.lim.MaxItems {
		return errTooManyItems{limit: d.lim.MaxItems}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			d.problem(line, "", "each item must be a JSON object")
		case line == 1 && bytes.HasPrefix(raw, []byte("--")):
			d.problem(line, "", formUploadHint)
		default:
			d.problem(line, "", "invalid JSON: "+err.Error())
		}
		return nil
	}
	ok := true
	spec, err := d.spec(m)
	var be *bodyError
	switch {
	case errors.As(err, &be):
		field, reason := be.problem()
		d.problem(line, field, reason)
		ok = false
	case err != nil:
		return err
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
		h := sha256.Sum256([]byte(cid))
		key := [16]byte(h[:16])
		if other, dup := d.seen[key]; dup {
			d.problem(line, "custom_id", fmt.Sprintf("duplicate custom_id %q (first on line %d)", cid, other))
			ok = false
		} else {
			d.seen[key] = line
		}
	}
	if !ok {
		return nil
	}
	d.valid++
	if len(d.problems) > 0 || d.store == nil {
		return nil // the upload will be refused: nothing more is stored
	}
	return d.store(jobs.BatchItem{CustomID: cid, Inputs: spec.Inputs})
}

// spec maps an item onto the client part of its spec (itemForm): the
// item's inputs, to run with the batch's program and options.
func (d *batchDecoder) spec(m map[string]json.RawMessage) (jobs.ClientSpec, error) {
	values, err := itemValues(m)
	if err != nil {
		return jobs.ClientSpec{}, err
	}
	spec, _, err := itemForm.decode(values, d.lim.spec(), jobs.Options{})
	return spec, err
}

// itemValues decodes the values of an item's fields but custom_id, numbers
// kept as written.
func itemValues(m map[string]json.RawMessage) (map[string]any, error) {
	values := make(map[string]any, len(m))
	for k, raw := range m {
		if slices.Contains(itemForm.own, k) {
			continue // custom_id: item reads it
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil { // raw is a value json.Unmarshal read
			return nil, fmt.Errorf("decode item field %s: %w", k, err)
		}
		values[k] = v
	}
	return values, nil
}
