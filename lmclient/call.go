package lmclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/qaqueue/qaqueue/program"
)

// chatPath is the chat completions endpoint, relative to the base URL.
const chatPath = "chat/completions"

// call makes the provider call, bounded by Config.Timeout; model, when not
// nil, receives the answer's model.
func (c *Client) call(ctx context.Context, req *program.Request, model *string) (*program.Completion, error) {
	body, err := c.requestBody(req)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	start := time.Now()
	var comp *program.Completion
	if req.OnDelta != nil {
		comp, err = c.stream(cctx, body, req.OnDelta, model)
	} else {
		comp, err = c.json(cctx, body, model)
	}
	if err != nil {
		return nil, c.classify(ctx, cctx, err)
	}
	d := c.metrics.durationJSON
	if req.OnDelta != nil {
		d = c.metrics.durationStream
	}
	d.Observe(time.Since(start).Seconds())
	return comp, nil
}

// classify maps any failure to the caller's context error, or an APIError.
func (c *Client) classify(ctx, cctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("call lm: %w", ctx.Err())
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	if cctx.Err() != nil {
		return &APIError{Code: CodeTimeout, Message: fmt.Sprintf("no complete answer within %s", c.cfg.Timeout), Model: c.cfg.Model, Err: err}
	}
	return classifyTransport(ctx, c.cfg.Model, err)
}

// json posts body and decodes the answer once, into the fields the client
// reads; model, when not nil (a traced call), gets the answer's model too.
func (c *Client) json(ctx context.Context, body []byte, model *string) (*program.Completion, error) {
	var raw []byte
	if err := c.api.Post(ctx, chatPath, body, &raw); err != nil {
		return nil, err
	}
	if model != nil {
		*model = gjson.GetBytes(raw, "model").String()
	}
	return c.decodeCompletion(raw)
}

// decodeCompletion reads a non-streamed chat completion: the live answer's
// body, or a provider batch output line's response body.
func (c *Client) decodeCompletion(raw []byte) (*program.Completion, error) {
	var res wireCompletion
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("error parsing response json: %w", err)
	}
	if len(res.Choices) == 0 {
		return nil, &APIError{Code: CodeTruncated, Message: "response has no choices", Model: c.cfg.Model}
	}
	usage, err := parseUsage(string(res.Usage))
	if err != nil {
		return nil, &APIError{Code: CodeTruncated, Message: err.Error(), Model: c.cfg.Model, Err: err}
	}
	ch := res.Choices[0]
	return &program.Completion{Text: ch.Message.Content, FinishReason: ch.FinishReason, Usage: usage}, nil
}

// stream reads SSE chunks, hands each content delta to onDelta in order and
// keeps the last usage block (stream_options.include_usage). openai-go makes
// the request (auth, errors); the response body is read by sseReader. A stream
// that ends without a finish reason and [DONE] was cut: a retryable
// truncated error. model, when not nil (a traced call), gets the first
// chunk's model.
func (c *Client) stream(ctx context.Context, body []byte, onDelta func(string), model *string) (*program.Completion, error) {
	var res *http.Response
	if err := c.api.Post(ctx, chatPath, body, &res); err != nil {
		return nil, err
	}
	if res == nil || res.Body == nil {
		return nil, &APIError{Code: CodeTruncated, Message: "stream response has no body", Model: c.cfg.Model}
	}
	defer res.Body.Close()
	sse := newSSEReader(res.Body)
	var text strings.Builder
	var finish, usageRaw string
	done := false
	for !done {
		data, err := sse.next()
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, &APIError{Code: CodeTruncated, Message: "stream cut: " + err.Error(), Model: c.cfg.Model, Err: err}
		}
		if bytes.HasPrefix(data, []byte("[DONE]")) {
			done = true
			continue
		}
		if model != nil && *model == "" {
			*model = gjson.GetBytes(data, "model").String()
		}
		ch := parseChunk(data)
		if ch.errorRaw != "" {
			return nil, c.streamError(ch.errorRaw)
		}
		if ch.content != "" {
			text.WriteString(ch.content)
			onDelta(ch.content)
		}
		if ch.hasFinish {
			finish = ch.finish
		}
		if ch.usage != "" && ch.usage != "null" {
			usageRaw = ch.usage
		}
	}
	if finish == "" {
		return nil, &APIError{Code: CodeTruncated, Message: "stream ended without a finish reason", Model: c.cfg.Model}
	}
	usage, err := parseUsage(usageRaw)
	if err != nil {
		return nil, &APIError{Code: CodeTruncated, Message: err.Error(), Model: c.cfg.Model, Err: err}
	}
	return &program.Completion{Text: text.String(), FinishReason: finish, Usage: usage}, nil
}

// streamError maps an error event sent mid-stream. Providers send these for
// overloads after the 200 went out, so it is retryable like a cut stream.
func (c *Client) streamError(raw string) error {
	var body struct {
		Message string `json:"message"`
		Type    string `json:"type"`
	}
	if json.Unmarshal([]byte(raw), &body) != nil || body.Message == "" {
		body.Message = raw
	}
	return &APIError{Code: CodeTruncated, Type: body.Type, Message: "error event mid-stream: " + body.Message, Model: c.cfg.Model}
}

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

// errorMiddleware turns every HTTP error response into an *APIError with the
// status, provider code and Retry-After headers, whatever the body looks
// like (openai-go would drop a non-JSON body's status). model names the
// errors.
func errorMiddleware(model string) option.Middleware {
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		res, err := next(req)
		if err != nil || res.StatusCode < 400 {
			return res, err
		}
		body, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
		_ = res.Body.Close()
		return nil, apiErrorFromResponse(model, res.StatusCode, res.Header, body, time.Now())
	}
}

// apiErrorFromResponse reads OpenAI's {"error": {message, type, code}} shape,
// and the bare or string forms other providers send.
func apiErrorFromResponse(model string, status int, h http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{Status: status, Model: model, RetryAfter: retryAfterFromHeader(h, now)}
	var wrapped struct {
		Error json.RawMessage `json:"error"`
	}
	obj := body
	if json.Unmarshal(body, &wrapped) == nil && len(wrapped.Error) > 0 {
		obj = wrapped.Error
	}
	var fields struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    any    `json:"code"`
	}
	if json.Unmarshal(obj, &fields) == nil {
		e.Message, e.Type = fields.Message, fields.Type
		switch v := fields.Code.(type) {
		case string:
			e.Code = v
		case float64:
			e.Code = fmt.Sprint(v)
		}
	} else {
		var s string
		if json.Unmarshal(obj, &s) == nil {
			e.Message = s
		}
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 300 {
			e.Message = e.Message[:300] + "…"
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}
