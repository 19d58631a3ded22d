package program

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// RunOptions are per-run settings. The zero value (or nil) runs without
// streaming, with the cache, at interactive priority.
type RunOptions struct {
	// NoCache bypasses the LM cache for every call of the run.
	NoCache bool
	// Priority is passed to every LM call.
	Priority Priority
	// StreamFields lists the str output fields to stream through OnChunk
	// ("reasoning", "answer", …). Empty means no streaming.
	StreamFields []string
	// OnChunk receives each chunk of a streamed field, in order, from the
	// goroutine that calls the LM. The chunks of a field concatenate to
	// exactly its parsed value.
	OnChunk func(field, chunk string)
	// OnReset is called when chunks already sent must be discarded: the
	// attempt that produced them failed to parse and another follows, or
	// (rarely) the stream disagreed with the parsed answer and the fields
	// are about to be re-sent whole.
	OnReset func(reason string)
	// FromAttempt starts the run at that attempt of DSPy's fallback, as
	// the LM lists them (0 ChatAdapter, then JSON with structured outputs
	// when the LM takes a response schema, then JSON mode), its first call
	// made as one that follows a parse failure (SkipCacheRead). The offload
	// runner renders a fallback's request with it, so that it is the one
	// the live run would have sent. Past the last attempt: ErrNoAttempt.
	FromAttempt int
}

// Result is the outcome of a run.
type Result struct {
	// Outputs holds the parsed output fields in signature order
	// (reasoning first for ChainOfThought). Values are string, int64,
	// float64, bool, nil, []any or *Map; it marshals as a JSON object.
	Outputs *Map `json:"outputs"`
	// Usage is DSPy's usage shape, keyed by the LM's model string. Cached
	// calls add nothing: a fully cached run gives an empty map.
	Usage map[string]Usage `json:"usage"`
	// CacheHit is true when every LM call of the run came from the cache.
	CacheHit bool `json:"cache_hit"`
	// Calls is the number of LM calls made (1 to 3).
	Calls int `json:"lm_calls"`
	// Format says which attempt parsed: "chat", "json_schema" or
	// "json_object".
	Format string `json:"format"`
	// AcceptError is the error of lm.Accept for the parsed completion: the
	// answer stands but may not have been cached.
	AcceptError error `json:"-"`
}

// Output formats of the attempts.
const (
	FormatChat       = "chat"
	FormatJSONSchema = "json_schema"
	FormatJSONObject = "json_object"
)

type attempt struct {
	format  string
	adapter Adapter
	rf      *ResponseFormat
}

// attempts is DSPy's ChatAdapter call with its JSONAdapter fallback:
// structured outputs first, JSON mode second. An open-ended dict output, or
// an LM whose model takes no response schema (see ResponseSchemaSupporter),
// goes straight to JSON mode.
func attempts(sig *Signature, lm LM) []attempt {
	out := make([]attempt, 1, 3)
	out[0] = attempt{format: FormatChat, adapter: ChatAdapter{}}
	supports := true
	if s, ok := lm.(ResponseSchemaSupporter); ok {
		supports = s.SupportsResponseSchema()
	}
	if supports && !hasOpenEndedDict(sig) {
		out = append(out, attempt{format: FormatJSONSchema, adapter: JSONAdapter{}, rf: sig.structuredFormat()})
	}
	return append(out, attempt{format: FormatJSONObject, adapter: JSONAdapter{}, rf: jsonObjectFormat})
}

// jsonObjectFormat is JSON mode's response format, shared by every request:
// the LM reads it and never changes it.
var jsonObjectFormat = &ResponseFormat{Type: "json_object"}

// structuredFormat is structuredOutputFormat(s), built once per signature
// and shared, as jsonObjectFormat is, by every request made with it.
func (s *Signature) structuredFormat() *ResponseFormat {
	s.structuredOnce.Do(func() { s.structured = structuredOutputFormat(s) })
	return s.structured
}

func hasOpenEndedDict(sig *Signature) bool {
	for _, f := range sig.outputs {
		if f.Type.Name == "dict" {
			return true
		}
	}
	return false
}

// structuredOutputFormat is the json_schema response format DSPy sends,
// as LiteLLM puts it on the wire: the schema of DSPyProgramOutputs (see
// structuredOutputSchema), named so, strict; and the schema DSPy hashes.
func structuredOutputFormat(sig *Signature) *ResponseFormat {
	key, wire := structuredOutputSchemas(sig)
	kb, wb := pyJSONCompact(key), pyJSONCompact(wire)
	rf := &ResponseFormat{Type: "json_schema", Name: "DSPyProgramOutputs", Schema: wb, Strict: true}
	if string(kb) != string(wb) {
		rf.KeySchema = kb
	}
	return rf
}

// Run calls the program's first predictor on inputs through lm, with
// DSPy's fallback: the ChatAdapter attempt, then (only after a parse
// failure) JSONAdapter with structured outputs, then JSON mode. LM errors
// end the run at once, wrapped so that errors.As finds the LM's own types;
// when every attempt fails to parse, the error is the last *ParseError.
// Only completions that parsed are passed to lm.Accept, and an attempt that
// follows a parse failure skips cache reads.
func (p *Program) Run(ctx context.Context, lm LM, inputs map[string]any, opts *RunOptions) (*Result, error) {
	return p.runPredict(ctx, lm, p.Predictor().Predict, inputs, opts)
}

// RunStage calls the predictor saved under key (a stage of a multi-stage
// program) on inputs, as Run calls the first: the same adapters, fallback,
// streaming and errors.
func (p *Program) RunStage(ctx context.Context, lm LM, key string, inputs map[string]any, opts *RunOptions) (*Result, error) {
	pred, ok := p.Predict(key)
	if !ok {
		return nil, fmt.Errorf("run stage %q: %w", key, ErrNoPredictor)
	}
	return p.runPredict(ctx, lm, pred, inputs, opts)
}

// ErrNoPredictor is returned by RunStage for a key the program has no
// predictor under.
var ErrNoPredictor = errors.New("no such predictor")

// MergeUsage returns a + b, usage maps keyed by model, merged the way
// DSPy's usage tracker merges calls (numbers add, nested maps merge): a
// multi-stage run's total over its stages. Neither argument is changed.
func MergeUsage(a, b map[string]Usage) map[string]Usage {
	out := make(map[string]Usage, len(a)+len(b))
	for m, u := range a {
		out[m] = mergeUsage(nil, u)
	}
	for m, u := range b {
		addUsage(out, m, u)
	}
	return out
}

func (p *Program) runPredict(ctx context.Context, lm LM, pred *Predict, inputs map[string]any, opts *RunOptions) (*Result, error) {
	if opts == nil {
		opts = &RunOptions{}
	}
	sig := pred.sig
	if err := checkStreamFields(sig, opts); err != nil {
		return nil, err
	}
	all := attempts(sig, lm)
	if opts.FromAttempt < 0 || opts.FromAttempt >= len(all) {
		return nil, fmt.Errorf("run program: attempt %d of %d: %w", opts.FromAttempt, len(all), ErrNoAttempt)
	}
	res := &Result{Usage: map[string]Usage{}}
	allCached := true
	afterParseFailure := opts.FromAttempt > 0
	var lastErr error
	for _, a := range all[opts.FromAttempt:] {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("run program: %w", err)
		}
		req := &Request{
			Messages:       a.adapter.Format(sig, pred.demos, inputs),
			ResponseFormat: a.rf,
			NoCache:        opts.NoCache,
			SkipCacheRead:  afterParseFailure,
			Priority:       opts.Priority,
		}
		streams := newStreamSet(a.format, opts)
		if streams != nil {
			req.OnDelta = streams.write
		}
		c, err := lm.Complete(ctx, req)
		if err != nil {
			streams.abandon("the LM call failed")
			return nil, fmt.Errorf("complete %s: %w", a.format, err)
		}
		if c == nil {
			return nil, fmt.Errorf("complete %s: no completion", a.format)
		}
		res.Calls++
		allCached = allCached && c.CacheHit
		if !c.CacheHit {
			addUsage(res.Usage, lm.Model(), c.Usage)
		}
		streams.close()
		out, err := a.adapter.Parse(sig, c.Text)
		if err != nil {
			lastErr = err
			afterParseFailure = true
			streams.abandon("the " + a.format + " answer did not parse; retrying")
			continue
		}
		streams.reconcile(out)
		if err := lm.Accept(ctx, req, c); err != nil {
			res.AcceptError = fmt.Errorf("accept completion: %w", err)
		}
		res.Outputs = out
		res.CacheHit = allCached
		res.Format = a.format
		return res, nil
	}
	return nil, fmt.Errorf("parse LM answer: %w", lastErr)
}

// ErrNoAttempt is returned by Run for a RunOptions.FromAttempt past the
// last attempt the LM has.
var ErrNoAttempt = errors.New("no such attempt")

// checkStreamFields requires every streamed field to be a str output.
func checkStreamFields(sig *Signature, opts *RunOptions) error {
	for _, name := range opts.StreamFields {
		f, ok := sig.Output(name)
		if !ok || !f.Type.IsStr() {
			return fmt.Errorf("run program: stream field %q: %w", name, ErrNotStreamable)
		}
	}
	return nil
}

// ErrNotStreamable is returned by Run for a stream field that is not a str
// output field of the signature.
var ErrNotStreamable = errors.New("not a str output field")

// streamSet fans one attempt's deltas out to a listener per field and
// tracks what each emitted.
type streamSet struct {
	opts    *RunOptions
	fields  []string
	streams []fieldStream
	emitted []strings.Builder
	any     bool
}

func newStreamSet(format string, opts *RunOptions) *streamSet {
	if len(opts.StreamFields) == 0 || opts.OnChunk == nil {
		return nil
	}
	s := &streamSet{opts: opts, fields: opts.StreamFields, emitted: make([]strings.Builder, len(opts.StreamFields))}
	for i, name := range opts.StreamFields {
		emit := s.emitter(i)
		if format == FormatChat {
			s.streams = append(s.streams, newChatFieldStream(name, emit))
		} else {
			s.streams = append(s.streams, newJSONFieldStream(name, emit))
		}
	}
	return s
}

func (s *streamSet) emitter(i int) func(string) {
	return func(chunk string) {
		if chunk == "" {
			return
		}
		s.any = true
		s.emitted[i].WriteString(chunk)
		s.opts.OnChunk(s.fields[i], chunk)
	}
}

func (s *streamSet) write(delta string) {
	for _, st := range s.streams {
		st.write(delta)
	}
}

func (s *streamSet) close() {
	if s == nil {
		return
	}
	for _, st := range s.streams {
		st.close()
	}
}

// abandon tells the caller to drop what this attempt streamed.
func (s *streamSet) abandon(reason string) {
	if s == nil || !s.any || s.opts.OnReset == nil {
		return
	}
	s.opts.OnReset(reason)
}

// reconcile makes the streamed chunks add up to the parsed values: a
// missing tail is sent; a divergence resets the stream and re-sends every
// field whole.
func (s *streamSet) reconcile(out *Map) {
	if s == nil {
		return
	}
	want := make([]string, len(s.fields))
	diverged := false
	for i, name := range s.fields {
		v, _ := out.Get(name)
		want[i] = pyStr(v)
		if !strings.HasPrefix(want[i], s.emitted[i].String()) {
			diverged = true
		}
	}
	if diverged {
		if s.any && s.opts.OnReset != nil {
			s.opts.OnReset("the streamed text differed from the parsed answer; resending")
		}
		for i := range s.emitted {
			s.emitted[i].Reset()
		}
	}
	for i, name := range s.fields {
		if tail := want[i][s.emitted[i].Len():]; tail != "" {
			s.emitted[i].WriteString(tail)
			s.opts.OnChunk(name, tail)
		}
	}
}
