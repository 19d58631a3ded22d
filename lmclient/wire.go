package lmclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/qaqueue/qaqueue/program"
)

// requestBody is the chat completions request for req, encoded once, byte
// for byte as openai-go encodes its ChatCompletionNewParams (field order,
// string escaping, numbers; testdata/wire pins it), without its per-call
// reflection. Unset temperature and max tokens are left out, as LiteLLM
// does with DSPy's None; "stream" comes last, where openai-go's
// option.WithJSONSet put it.
func (c *Client) requestBody(req *program.Request) ([]byte, error) {
	return c.appendRequestBody(nil, req, req.OnDelta != nil)
}

// bodySize estimates the bytes of req's request body, escaping included,
// so that it is written into one allocation.
func (c *Client) bodySize(req *program.Request) int {
	n := 128 + len(c.prov.WireModel)
	for _, m := range req.Messages {
		n += len(m.Content) + len(m.Content)/8 + 32
	}
	if f := req.ResponseFormat; f != nil {
		n += len(f.Schema) + 2*len(f.Name) + 96 // Wire's keys around them
	}
	return n
}

// appendRequestBody appends req's request body to dst: streamed (the
// stream fields set) or not, whatever req.OnDelta says.
func (c *Client) appendRequestBody(dst []byte, req *program.Request, stream bool) ([]byte, error) {
	n := c.bodySize(req)
	var rf []byte
	if f := req.ResponseFormat; f != nil {
		switch f.Type {
		case "json_object", "json_schema":
			// LiteLLM's key order (type; schema, name, strict), so the body
			// carries DSPy's response_format byte for byte.
			rf = f.Wire()
		default:
			return nil, fmt.Errorf("build request: unknown response_format type %q", f.Type)
		}
	}
	b := slices.Grow(dst, n)
	b = append(b, `{"messages":[`...)
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "user", "assistant", "developer":
		default:
			return nil, fmt.Errorf("build request: message %d has unknown role %q", i, m.Role)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"content":`...)
		b = appendJSONString(b, m.Content)
		b = append(b, `,"role":"`...)
		b = append(b, m.Role...)
		b = append(b, `"}`...)
	}
	b = append(b, `],"model":`...)
	b = appendJSONString(b, c.prov.WireModel)
	if n := c.cfg.MaxTokens; n != nil {
		if c.reasoning {
			b = append(b, `,"max_completion_tokens":`...)
		} else {
			b = append(b, `,"max_tokens":`...)
		}
		b = strconv.AppendInt(b, int64(*n), 10)
	}
	if t := c.cfg.Temperature; t != nil {
		b = append(b, `,"temperature":`...)
		b = appendJSONFloat(b, *t)
	}
	if stream {
		b = append(b, `,"stream_options":{"include_usage":true}`...)
	}
	if rf != nil {
		b = append(b, `,"response_format":`...)
		buf := bytes.NewBuffer(b)
		if err := json.Compact(buf, rf); err != nil {
			return nil, fmt.Errorf("build request: response_format: %w", err)
		}
		b = buf.Bytes()
	}
	if stream {
		b = append(b, `,"stream":true`...)
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as encoding/json does with HTML escaping off
// (openai-go's encoder): short escapes for \b \f \n \r \t, \u00XX for the
// other control characters, U+2028 and U+2029 escaped, invalid UTF-8 as
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONFloat appends f as encoding/json does (ES6 number formatting).
// Config validation keeps f finite.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// wireCompletion is the part of a chat completion the client reads.
type wireCompletion struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage json.RawMessage `json:"usage"`
}
