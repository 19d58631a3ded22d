package lmclient

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/qaqueue/qaqueue/program"
)

// fnIdentifier is what DSPy's request_cache decorator adds for the sync chat
// path (SPEC §7.2). The async path would differ; we key as the sync one,
// which is the published vector.
const fnIdentifier = "dspy.clients.lm.litellm_completion"

// cacheRequest builds the request dict DSPy hashes (SPEC §7.2):
// _fn_identifier, model (the full DSPy string), messages, temperature and
// max_tokens (max_completion_tokens for reasoning models) even when null,
// and response_format when set. response_format is DSPy's form after its
// transform T: {"type": "json_object"} for JSON mode, and for json_schema the
// schema itself, because DSPy passes the pydantic class DSPyProgramOutputs,
// which T turns into its model_json_schema() (the post-processed schema).
// api_key and api_base are never part of it.
func (c *Client) cacheRequest(req *program.Request) (map[string]any, error) {
	msgs := make([]any, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	r := map[string]any{
		"_fn_identifier": fnIdentifier,
		"model":          c.cfg.Model,
		"messages":       msgs,
		"temperature":    nil,
	}
	if c.cfg.Temperature != nil {
		r["temperature"] = *c.cfg.Temperature
	}
	tokensKey := "max_tokens"
	if c.reasoning {
		tokensKey = "max_completion_tokens"
	}
	r[tokensKey] = nil
	if c.cfg.MaxTokens != nil {
		r[tokensKey] = *c.cfg.MaxTokens
	}
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "json_schema":
			// DSPy hashes its model_json_schema(), before LiteLLM's strict
			// rewrite (program.ResponseFormat.KeySchema).
			raw := rf.KeySchema
			if raw == nil {
				raw = rf.Schema
			}
			var schema any
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&schema); err != nil {
				return nil, fmt.Errorf("decode response_format schema: %w", err)
			}
			r["response_format"] = schema
		default:
			r["response_format"] = map[string]any{"type": rf.Type}
		}
	}
	return r, nil
}

// CacheKey returns DSPy's cache key for req under this client's settings:
// the sha256 of the canonical JSON of the request dict (cacheRequest). It
// writes those bytes directly, in the dict's sorted key order, rather than
// building the dict and sorting it: a key is computed for every call.
func (c *Client) CacheKey(req *program.Request) (string, error) {
	k := &c.key
	k.once.Do(func() { k.head, k.model, k.tail, k.err = c.keyParts() })
	if k.err != nil {
		return "", k.err
	}
	b := keyBuffers.Get().(*bytes.Buffer)
	defer keyBuffers.Put(b)
	b.Reset()
	b.WriteString(k.head)
	for i, m := range req.Messages {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"content":`)
		program.WriteSortedJSONString(b, m.Content)
		b.WriteString(`,"role":`)
		program.WriteSortedJSONString(b, m.Role)
		b.WriteByte('}')
	}
	b.WriteString(k.model)
	if rf := req.ResponseFormat; rf != nil {
		b.WriteString(`,"response_format":`)
		if err := k.writeFormat(b, rf); err != nil {
			return "", err
		}
	}
	b.WriteString(k.tail)
	if !utf8.Valid(b.Bytes()) {
		return "", errors.New("encode canonical json: text is not valid UTF-8")
	}
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// keyBuffers hold the canonical JSON of a request while CacheKey hashes it.
var keyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxKeySchemas bounds the schemas whose canonical form a Client keeps:
// a program has a few, so more means schemas built per request, which are
// then encoded each time.
const maxKeySchemas = 256

// cacheKeyParts are the pieces of the request dict's canonical JSON that
// are the same for every request of a Client, and the canonical form of
// each response_format schema met so far.
type cacheKeyParts struct {
	once sync.Once
	// head runs to the messages' opening bracket, model from their closing
	// one through the model, tail from temperature to the end.
	head, model, tail string
	err               error

	mu      sync.Mutex
	schemas map[string][]byte
}

// keyParts renders the fixed pieces of cacheRequest's dict, each value as
// CanonicalJSON writes it, the keys in sorted order: _fn_identifier,
// max_tokens (or max_completion_tokens), messages, model,
// response_format, temperature.
func (c *Client) keyParts() (head, model, tail string, err error) {
	r, err := c.cacheRequest(&program.Request{})
	if err != nil {
		return "", "", "", err
	}
	tokensKey := "max_tokens"
	if c.reasoning {
		tokensKey = "max_completion_tokens"
	}
	enc := func(v any) string {
		if err != nil {
			return ""
		}
		var b []byte
		b, err = CanonicalJSON(v)
		return string(b)
	}
	head = `{"_fn_identifier":` + enc(r["_fn_identifier"]) + `,"` + tokensKey + `":` + enc(r[tokensKey]) + `,"messages":[`
	model = `],"model":` + enc(r["model"])
	tail = `,"temperature":` + enc(r["temperature"]) + `}`
	return head, model, tail, err
}

// writeFormat writes rf as cacheRequest puts it in the dict: a json_schema
// as its schema (KeySchema, else Schema) in canonical form, kept once
// computed; another type as {"type": …}.
func (k *cacheKeyParts) writeFormat(b *bytes.Buffer, rf *program.ResponseFormat) error {
	if rf.Type != "json_schema" {
		b.WriteString(`{"type":`)
		program.WriteSortedJSONString(b, rf.Type)
		b.WriteByte('}')
		return nil
	}
	raw := rf.KeySchema
	if raw == nil {
		raw = rf.Schema
	}
	k.mu.Lock()
	canon, ok := k.schemas[string(raw)]
	k.mu.Unlock()
	if !ok {
		var schema any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&schema); err != nil {
			return fmt.Errorf("decode response_format schema: %w", err)
		}
		var err error
		if canon, err = CanonicalJSON(schema); err != nil {
			return err
		}
		k.mu.Lock()
		if k.schemas == nil {
			k.schemas = map[string][]byte{}
		}
		if len(k.schemas) < maxKeySchemas {
			k.schemas[string(raw)] = canon
		}
		k.mu.Unlock()
	}
	b.Write(canon)
	return nil
}

// KeyOf hashes a request dict as DSPy does: sha256 over CanonicalJSON.
func KeyOf(request map[string]any) (string, error) {
	b, err := CanonicalJSON(request)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// CanonicalJSON encodes v as orjson.dumps(v, option=OPT_SORT_KEYS) does,
// which is how DSPy serialises the request dict it hashes (SPEC §7.2); see
// program.EncodeSortedJSON. Values may be nil, bool, string, int, int64,
// float64, json.Number, map[string]any and []any.
func CanonicalJSON(v any) ([]byte, error) {
	b, err := program.EncodeSortedJSON(v)
	if err != nil {
		return nil, fmt.Errorf("encode canonical json: %w", err)
	}
	return b, nil
}
