package jobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/qaqueue/qaqueue/program"
)

// A job's spec is what it runs: the program, its inputs and the options (the
// client part, the only part a request decoder fills), and who asked, on
// which queue, and which version of the program (the server part, set by the
// API alone). It is stored once: whole in the job record, or for batch items
// in their batch (the batch-wide part in the batch record, each item's
// inputs in the items hash). Task payloads carry ids only.

// ProgramQA names the built-in program: DSPy's QA signature, question ->
// answer, key_concepts, question_type, which the seed's endpoints run. Its
// one input is question. Other programs are pushed to the registry
// (package programs).
const ProgramQA = "qa"

// Inputs are a job's inputs: the program's input field names to their
// values, as JSON gives them (ParseSpec and request decoders keep numbers as
// json.Number, as written: DSPy renders 1 and 1.0 differently).
type Inputs map[string]any

// Options are a request's switches. Each is a JSON boolean a request may set
// (Options.Set); adding one here is all the decoders need.
type Options struct {
	// Stream publishes the answer's tokens as events.
	Stream bool `json:"stream,omitempty"`
	// NoCache bypasses the LM cache.
	NoCache bool `json:"no_cache,omitempty"`
}

// ClientSpec is the client part of a spec: what a request may say.
type ClientSpec struct {
	// Program names the program to run as the request named it,
	// "name[@alias]" (ProgramQA by default); the API resolves it once, into
	// ServerSpec.ProgramVersion.
	Program string  `json:"program"`
	Inputs  Inputs  `json:"inputs,omitempty"`
	Options Options `json:"options,omitzero"`
}

// ServerSpec is the server part of a spec, set by the API alone: a request
// that names one of its fields is refused (ServerFields).
type ServerSpec struct {
	// Owner is the API key's name the job counts against.
	Owner string `json:"owner,omitempty"`
	// Queue is QueueInteractive or QueueBatch.
	Queue string `json:"queue,omitempty"`
	// ProgramVersion is the version of the program the job runs, resolved
	// from Program at submit (a batch's at create). Empty for the built-in
	// QA program (and for jobs queued before the registry).
	ProgramVersion string `json:"program_version,omitempty"`
	// Trace is the W3C traceparent of the span that enqueued the job (see
	// package telemetry): every attempt's spans continue that trace, on
	// whichever worker. A batch's spec holds its create request's; its
	// items' spans link to it instead. Empty when tracing is off. Spec.Hash
	// leaves it out, so a client's retry under a new span still replays.
	Trace string `json:"trace,omitempty"`
	// Batch names the item of a batch item's spec (nil for a job). It is
	// not stored: the item's start puts it in.
	Batch *BatchRef `json:"batch,omitempty"`
}

// Spec is a job's spec: the client part and the server part.
type Spec struct {
	ClientSpec
	ServerSpec
}

// ServerFields are the names of the server part's fields (and
// traceparent, which a client may mean for trace) that a request body may
// not use: the API answers 422 naming the field. A trace comes in the
// traceparent header.
var ServerFields = []string{"owner", "queue", "program_version", "batch", "trace", "traceparent"}

// IsServerField reports whether name is one of ServerFields.
func IsServerField(name string) bool { return slices.Contains(ServerFields, name) }

// QuestionSpec is the client part of a {"question": q} request: the QA
// program asked q. The seed's endpoints and the first body of POST /v1/jobs
// map onto it.
func QuestionSpec(q string) ClientSpec {
	return ClientSpec{Program: ProgramQA, Inputs: Inputs{"question": q}}
}

// Question is the QA program's question ("" when the inputs have none).
func (c ClientSpec) Question() string {
	q, _ := c.Inputs["question"].(string)
	return q
}

// ParseSpec decodes a stored spec, keeping numbers as json.Number. A spec as
// Marshal writes it is read in one pass (scanSpec), anything else through
// encoding/json's decoder, which the one pass reads as.
func ParseSpec(b []byte) (Spec, error) {
	if s, ok := scanSpec(b); ok {
		return s, nil
	}
	return decodeSpec(b)
}

// decodeSpec is ParseSpec through encoding/json.
func decodeSpec(b []byte) (Spec, error) {
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("decode spec: %w", err)
	}
	return s, nil
}

// scanSpec reads a valid spec object in one pass: its string fields
// directly, its inputs as Outputs' one pass reads values. ok is false for
// anything Marshal does not write (a key spelled otherwise or repeated, a
// null, the batch ref), which the decoder then reads (and reports).
func scanSpec(b []byte) (s Spec, ok bool) {
	if !json.Valid(b) {
		return s, false
	}
	var seen uint8
	ok = eachField(b, func(key, raw []byte) bool {
		var bit uint8
		var ok bool
		switch string(key) {
		case `"program"`:
			bit, ok = 1<<0, scanString(raw, &s.Program)
		case `"inputs"`:
			bit, ok = 1<<1, scanInputs(raw, &s.Inputs)
		case `"options"`:
			bit, ok = 1<<2, scanOptions(raw, &s.Options)
		case `"owner"`:
			bit, ok = 1<<3, scanString(raw, &s.Owner)
		case `"queue"`:
			bit, ok = 1<<4, scanString(raw, &s.Queue)
		case `"program_version"`:
			bit, ok = 1<<5, scanString(raw, &s.ProgramVersion)
		case `"trace"`:
			bit, ok = 1<<6, scanString(raw, &s.Trace)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
	return s, ok
}

// scanString reads a string literal into dst.
func scanString(raw []byte, dst *string) bool {
	if raw[0] != '"' {
		return false
	}
	v, ok := jsonString(raw)
	*dst = v
	return ok
}

// scanInputs reads an object of inputs into dst.
func scanInputs(raw []byte, dst *Inputs) bool {
	in := Inputs{}
	ok := eachField(raw, func(key, raw []byte) bool {
		name, ok := jsonString(key)
		if !ok {
			return false
		}
		in[name], ok = jsonValue(raw)
		return ok
	})
	*dst = in
	return ok
}

// scanOptions reads an object of the options Marshal writes into dst.
func scanOptions(raw []byte, dst *Options) bool {
	return eachField(raw, func(key, raw []byte) bool {
		var v *bool
		switch string(key) {
		case `"stream"`:
			v = &dst.Stream
		case `"no_cache"`:
			v = &dst.NoCache
		default:
			return false
		}
		switch string(raw) {
		case "true":
			*v = true
		case "false":
			*v = false
		default:
			return false
		}
		return true
	})
}

// Marshal encodes the spec as it is stored.
func (s Spec) Marshal() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode spec: %w", err)
	}
	return b, nil
}

// Limits bound what Validate accepts.
type Limits struct {
	// MaxQuestionChars is the longest question, in characters
	// (MAX_QUESTION_CHARS).
	MaxQuestionChars int
	// MaxInputBytes is the most bytes the inputs may take as JSON
	// (MAX_INPUT_BYTES); 0: no limit.
	MaxInputBytes int
}

// Problem says what is wrong with a field of a client part.
type Problem int

// Problems, in the order Validate looks for them.
const (
	// ProblemUnknown: a program, an input or an option this service does
	// not know.
	ProblemUnknown Problem = iota + 1
	// ProblemMissing: a required input is absent.
	ProblemMissing
	// ProblemNotString: a text input is not a string.
	ProblemNotString
	// ProblemEmpty: a text input is the empty string.
	ProblemEmpty
	// ProblemTooLong: a text input has more characters than Limit
	// (MAX_QUESTION_CHARS); Got says how many.
	ProblemTooLong
	// ProblemBlank: a text input holds only whitespace (Unicode's, as
	// strings.TrimSpace), so the LM would be asked nothing.
	ProblemBlank
	// ProblemTooLarge: the inputs take more bytes as JSON than Limit
	// (MAX_INPUT_BYTES); Got says how many.
	ProblemTooLarge
	// ProblemNotBool: an option is not a boolean.
	ProblemNotBool
	// ProblemType: an input's value does not fit its type; Expected and
	// Actual say what was expected and what came (program.InputError).
	ProblemType
)

// SpecError is why a client part is refused. Each edge words it in its own
// error shape.
type SpecError struct {
	// Field is the field at fault: "program", "inputs", "inputs.<name>" or
	// "options.<name>".
	Field   string
	Problem Problem
	// Limit and Got are the limit and what came, for ProblemTooLong and
	// ProblemTooLarge.
	Limit, Got int
	// Known lists what is known, for ProblemUnknown.
	Known []string
	// Expected and Actual are the type and what came, for ProblemType.
	Expected, Actual string
}

func (e *SpecError) Error() string {
	var what string
	switch e.Problem {
	case ProblemUnknown:
		what = "unknown (known: " + strings.Join(e.Known, ", ") + ")"
	case ProblemMissing:
		what = "required"
	case ProblemNotString:
		what = "must be a string"
	case ProblemEmpty:
		what = "must not be empty"
	case ProblemTooLong:
		what = fmt.Sprintf("longer than MAX_QUESTION_CHARS (%d characters, got %d)", e.Limit, e.Got)
	case ProblemBlank:
		what = "must not be blank (only whitespace)"
	case ProblemTooLarge:
		what = fmt.Sprintf("larger than MAX_INPUT_BYTES (%d bytes as JSON, got %d)", e.Limit, e.Got)
	case ProblemNotBool:
		what = "must be a boolean"
	case ProblemType:
		what = "expected " + e.Expected + ", got " + e.Actual
	}
	return e.Field + ": " + what
}

// Program is what Validate checks a spec's inputs against: the program its
// Program names, resolved (the API's registry does it).
type Program struct {
	// Name is the program's name, without an alias.
	Name string
	// Inputs are the program's input fields, typed.
	Inputs []program.Field
}

// QAProgram is the built-in QA program's: one str input, question.
func QAProgram() Program {
	return Program{Name: ProgramQA, Inputs: program.QASignature().Inputs()}
}

// Validate checks the client part's inputs against p, the program it
// names: every input is one of p's and every one of p's is there, each
// value fits its type (program.Type.Check), the QA program's question is a
// string that is not empty, blank or over lim.MaxQuestionChars characters,
// and the inputs take at most lim.MaxInputBytes as JSON. It returns the
// first problem found, a *SpecError.
func (c ClientSpec) Validate(lim Limits, p Program) error {
	names := make([]string, len(p.Inputs))
	for i, f := range p.Inputs {
		names[i] = f.Name
	}
	for _, k := range slices.Sorted(maps.Keys(c.Inputs)) {
		if !slices.Contains(names, k) {
			return &SpecError{Field: "inputs." + k, Problem: ProblemUnknown, Known: names}
		}
	}
	for _, f := range p.Inputs {
		if p.Name == ProgramQA && f.Name == "question" {
			if err := checkText("inputs."+f.Name, c.Inputs, f.Name, lim.MaxQuestionChars); err != nil {
				return err
			}
			continue
		}
		v, ok := c.Inputs[f.Name]
		if !ok {
			return &SpecError{Field: "inputs." + f.Name, Problem: ProblemMissing}
		}
		if ie := f.Type.Check(v); ie != nil {
			return &SpecError{Field: "inputs." + f.Name + ie.Field, Problem: ProblemType, Expected: ie.Expected, Actual: ie.Got}
		}
	}
	if lim.MaxInputBytes > 0 {
		b, err := json.Marshal(c.Inputs)
		if err != nil {
			return fmt.Errorf("encode inputs: %w", err)
		}
		if len(b) > lim.MaxInputBytes {
			return &SpecError{Field: "inputs", Problem: ProblemTooLarge, Limit: lim.MaxInputBytes, Got: len(b)}
		}
	}
	return nil
}

// checkText checks a required text input.
func checkText(field string, in Inputs, name string, maxChars int) *SpecError {
	raw, ok := in[name]
	if !ok {
		return &SpecError{Field: field, Problem: ProblemMissing}
	}
	s, ok := raw.(string)
	if !ok {
		return &SpecError{Field: field, Problem: ProblemNotString}
	}
	n := utf8.RuneCountInString(s)
	switch {
	case n == 0:
		return &SpecError{Field: field, Problem: ProblemEmpty}
	case n > maxChars:
		return &SpecError{Field: field, Problem: ProblemTooLong, Limit: maxChars, Got: n}
	case strings.TrimSpace(s) == "":
		return &SpecError{Field: field, Problem: ProblemBlank}
	}
	return nil
}

// optionFields maps each option's JSON name to its field index in Options.
var optionFields = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[Options]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		m[name] = i
	}
	return m
}()

// OptionNames lists the options a request may set, by their JSON names.
func OptionNames() []string { return slices.Sorted(maps.Keys(optionFields)) }

// Set sets the options named in m, a JSON object as a request gives it,
// leaving the others as they are (the defaults the caller set). A null
// value sets nothing. An unknown name or a value that is not a boolean is a
// *SpecError naming "options.<name>".
func (o *Options) Set(m map[string]any) error {
	v := reflect.ValueOf(o).Elem()
	for _, name := range slices.Sorted(maps.Keys(m)) {
		i, ok := optionFields[name]
		if !ok {
			return &SpecError{Field: "options." + name, Problem: ProblemUnknown, Known: OptionNames()}
		}
		if m[name] == nil {
			continue
		}
		b, ok := m[name].(bool)
		if !ok {
			return &SpecError{Field: "options." + name, Problem: ProblemNotBool}
		}
		v.Field(i).SetBool(b)
	}
	return nil
}

// Hash identifies a request, for its Idempotency-Key: the program, the
// inputs, the options and the queue (not the owner, whose keys are its
// own, nor the program version, which the client did not choose). The
// hash of a {"question": …} request (the QA program, its question alone,
// no option beyond stream and no_cache) is the one release 114e39c
// computed, so a replay across the upgrade still returns its job; other
// requests hash a canonical JSON form (object keys sorted, numbers as
// written).
func (s Spec) Hash() (string, error) {
	var v any = struct {
		Program string  `json:"program"`
		Inputs  Inputs  `json:"inputs"`
		Options Options `json:"options"`
		Queue   string  `json:"queue"`
	}{s.Program, s.Inputs, s.Options, s.Queue}
	if q, ok := s.Inputs["question"].(string); ok && s.Program == ProgramQA && len(s.Inputs) == 1 &&
		s.Options == (Options{Stream: s.Options.Stream, NoCache: s.Options.NoCache}) {
		v = struct {
			Q       string `json:"q"`
			Queue   string `json:"queue"`
			Stream  bool   `json:"stream"`
			NoCache bool   `json:"no_cache"`
		}{q, s.Queue, s.Options.Stream, s.Options.NoCache}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("hash spec: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
