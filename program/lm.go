package program

import (
	"context"
	"encoding/json"
)

// LM is what the program needs from a language model. The program owns this
// interface; lmclient satisfies it and tests use the fake LM server through it.
//
// Implementations must be safe for concurrent use.
type LM interface {
	// Model is the DSPy model string ("openai/gpt-4o-mini"); it keys usage.
	Model() string
	// Complete makes one chat call. When req.OnDelta is set the call streams and
	// OnDelta receives the content deltas in order (a cache hit is replayed
	// through OnDelta too). The returned Completion holds the full text.
	Complete(ctx context.Context, req *Request) (*Completion, error)
	// Accept tells the LM that the program parsed c, the answer to req, so it
	// may be cached. Responses that are never accepted are never cached: one
	// garbled answer must not be replayed forever.
	Accept(ctx context.Context, req *Request, c *Completion) error
}

// ResponseSchemaSupporter is implemented by an LM that knows whether its
// model takes a json_schema response_format: DSPy's
// lm.supports_response_schema, which decides whether the JSONAdapter
// fall-back tries structured outputs before JSON mode. An LM without the
// method is asked for structured outputs.
type ResponseSchemaSupporter interface {
	SupportsResponseSchema() bool
}

// Message is one chat message as sent on the wire.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ResponseFormat asks for JSON output (OpenAI's response_format).
type ResponseFormat struct {
	// Type is "json_object" or "json_schema".
	Type string `json:"type"`
	// Name, Schema and Strict are set for "json_schema".
	Name   string          `json:"name,omitempty"`
	Schema json.RawMessage `json:"schema,omitempty"`
	Strict bool            `json:"strict,omitempty"`
	// KeySchema is the schema as DSPy hashes it into the cache key:
	// DSPyProgramOutputs' model_json_schema(), before LiteLLM's strict
	// rewrite gives Schema (the two differ only where a $ref has sibling
	// keys or a default is null). Nil means Schema.
	KeySchema json.RawMessage `json:"-"`
}

// Wire is the response_format as LiteLLM and the openai client put DSPy's
// on the wire: {"type":"json_object"}, or {"type":"json_schema",
// "json_schema":{"schema":…,"name":…,"strict":…}} in that order, the
// schema's bytes as they are.
func (rf *ResponseFormat) Wire() json.RawMessage {
	if rf.Type != "json_schema" {
		t, _ := json.Marshal(rf.Type)
		return json.RawMessage(`{"type":` + string(t) + `}`)
	}
	name, _ := json.Marshal(rf.Name)
	strict := "false"
	if rf.Strict {
		strict = "true"
	}
	return json.RawMessage(`{"type":"json_schema","json_schema":{"schema":` + string(rf.Schema) + `,"name":` + string(name) + `,"strict":` + strict + `}}`)
}

// Request is one LM call.
type Request struct {
	Messages []Message
	// ResponseFormat is nil for plain chat output.
	ResponseFormat *ResponseFormat
	// OnDelta, when set, makes the call stream; it is called with each content
	// delta in order, from the calling goroutine.
	OnDelta func(delta string)
	// NoCache bypasses the cache entirely (no read, no write).
	NoCache bool
	// SkipCacheRead bypasses cache reads but still allows a write on Accept;
	// set for the attempt that follows a parse failure.
	SkipCacheRead bool
	// Priority orders waiters on a shared rate limit: interactive before batch.
	Priority Priority
}

// Priority says whose call waits less on a shared rate limit.
type Priority int

// Priorities, most urgent first.
const (
	PriorityInteractive Priority = iota
	PriorityBatch
)

// Completion is the LM's answer to one Request.
type Completion struct {
	Text         string
	FinishReason string
	// Usage is the provider's usage block in DSPy's shape; empty on a cache hit.
	Usage Usage
	// CacheHit is true when the cache answered and the provider was not called.
	CacheHit bool
	// CacheKey is the LM's cache key for the request, when it keeps one:
	// set by Complete so that Accept need not compute it again. Callers
	// leave it as Complete returned it.
	CacheKey string
}

// Usage is one usage block as DSPy records it: prompt_tokens, completion_tokens,
// total_tokens and the provider's *_details blocks, passed through unchanged.
// Values are int64, float64, nil or nested Usage maps.
type Usage map[string]any
