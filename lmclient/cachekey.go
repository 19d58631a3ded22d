package lmclient

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
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
			var schema any
			dec := json.NewDecoder(bytes.NewReader(rf.Schema))
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

// CanonicalJSON encodes v as orjson.dumps(v, option=OPT_SORT_KEYS) does:
// compact, keys sorted at every level, raw UTF-8 with only '"', '\\' and
// control characters escaped, floats in Python's repr form (1.0, 0.7).
// Values may be nil, bool, string, int, int64, float64, json.Number,
// map[string]any and []any.
func CanonicalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := writeCanonical(&b, v); err != nil {
		return nil, fmt.Errorf("encode canonical json: %w", err)
	}
	return b.Bytes(), nil
}

func writeCanonical(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case string:
		return writeString(b, x)
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		s, err := pyFloat(x)
		if err != nil {
			return err
		}
		b.WriteString(s)
	case json.Number:
		b.WriteString(x.String())
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonical(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // orjson sorts by UTF-8 bytes, as Go compares strings
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeString(b, k); err != nil {
				return err
			}
			b.WriteByte(':')
			if err := writeCanonical(b, x[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("unsupported type %T", v)
	}
	return nil
}

const hexDigits = "0123456789abcdef"

func writeString(b *bytes.Buffer, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("string is not valid UTF-8")
	}
	b.WriteByte('"')
	start := 0 // s[start:i] is a run of bytes written as they are
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		start = i + 1
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
	return nil
}

// pyFloat formats f as Python's repr (which orjson matches for the values
// that occur here): shortest round-trip digits, ".0" on integral values,
// exponent form below 1e-4 and from 1e16.
func pyFloat(f float64) (string, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", fmt.Errorf("float %v is not JSON", f)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64) // 1e-05 in Python, 1e-05 here
		return s, nil
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !bytes.ContainsAny([]byte(s), ".") {
		s += ".0"
	}
	return s, nil
}
