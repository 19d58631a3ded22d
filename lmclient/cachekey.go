package lmclient

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

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
// the sha256 of the canonical JSON of the request dict.
func (c *Client) CacheKey(req *program.Request) (string, error) {
	r, err := c.cacheRequest(req)
	if err != nil {
		return "", err
	}
	return KeyOf(r)
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
