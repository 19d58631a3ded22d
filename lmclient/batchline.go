package lmclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/qaqueue/qaqueue/program"
)

// MaxBatchLineBytes bounds one line of a provider batch output or error
// file: ParseBatchLine refuses a longer one, and a reader of those files
// should cut lines at the same length. A chat completion of the largest
// output budgets (128k tokens, escaped) fits well within it.
const MaxBatchLineBytes = 8 << 20

// Codes of an APIError for a batch request the provider never ran: the
// "error" object of its line in the batch's error file.
const (
	// CodeBatchExpired: the batch's completion window ended first. Retryable:
	// the same request may succeed live or in another batch.
	CodeBatchExpired = "batch_expired"
	// CodeBatchCancelled: the batch was cancelled first. Not retryable: a
	// cancel is someone's decision.
	CodeBatchCancelled = "batch_cancelled"
)

// Unfinished reports a batch request the provider never ran because its
// batch expired or was cancelled (CodeBatchExpired, CodeBatchCancelled),
// rather than one it ran and failed.
func (e *APIError) Unfinished() bool {
	return e.Status == 0 && (e.Code == CodeBatchExpired || e.Code == CodeBatchCancelled)
}

// batchURL is the endpoint of every batch request line and of the batch
// itself: the chat completions path relative to the provider's host as its
// batch API names it (Azure's is relative to its /openai root).
func batchURL(prov Provider) string {
	if prov.Name == "azure" {
		return "/chat/completions"
	}
	return "/v1/chat/completions"
}

// BatchLine is one request line of a provider batch input file (OpenAI's
// JSONL shape, no trailing newline):
//
//	{"custom_id":…,"method":"POST","url":"/v1/chat/completions","body":…}
//
// whose body is, byte for byte, what Complete sends for req without
// streaming (req.OnDelta is ignored). customID must be non-empty valid
// UTF-8: it comes back unchanged in the output line.
func (c *Client) BatchLine(customID string, req *program.Request) ([]byte, error) {
	if customID == "" || !utf8.ValidString(customID) {
		return nil, fmt.Errorf("build batch line: custom_id %q must be non-empty UTF-8", customID)
	}
	if req == nil || len(req.Messages) == 0 {
		return nil, errors.New("build batch line: request has no messages")
	}
	url := batchURL(c.prov)
	b := make([]byte, 0, len(customID)+len(customID)/8+len(url)+64+c.bodySize(req))
	b = append(b, `{"custom_id":`...)
	b = appendJSONString(b, customID)
	b = append(b, `,"method":"POST","url":`...)
	b = appendJSONString(b, url)
	b = append(b, `,"body":`...)
	b, err := c.appendRequestBody(b, req, false)
	if err != nil {
		return nil, fmt.Errorf("build batch line: %w", err)
	}
	return append(b, '}'), nil
}

// wireBatchLine is one line of a batch output or error file.
type wireBatchLine struct {
	CustomID *string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	// Error is read as a live error body is (apiErrorFromResponse), so an
	// odd code or shape does not make the line unreadable.
	Error json.RawMessage `json:"error"`
}

// ParseBatchLine reads one line of a provider batch output or error file:
// the request's custom_id and its completion, decoded as a live answer is
// (text, finish reason, usage). A request that failed gives an *APIError
// classified as a live call's: from response.status_code ≥ 400 and its body
// (status, code, Retryable), or from the line's "error" object (Status 0
// and its code: CodeBatchExpired and CodeBatchCancelled for requests never
// run, see Unfinished; any other code is permanent). A 200 answer without
// choices is a retryable truncated APIError, as live. Any other malformed
// line is a plain error, with customID "" when it has none. Lines longer
// than MaxBatchLineBytes are refused unread.
func (c *Client) ParseBatchLine(line []byte) (customID string, comp *program.Completion, err error) {
	if len(line) > MaxBatchLineBytes {
		return "", nil, fmt.Errorf("parse batch line: %d bytes exceeds %d", len(line), MaxBatchLineBytes)
	}
	var l wireBatchLine
	if err := json.Unmarshal(line, &l); err != nil {
		return "", nil, fmt.Errorf("parse batch line: %w", err)
	}
	if l.CustomID == nil || *l.CustomID == "" {
		return "", nil, errors.New("parse batch line: no custom_id")
	}
	id := *l.CustomID
	status := 0
	if l.Response != nil {
		status = l.Response.StatusCode
	}
	switch {
	case l.Response != nil && status >= 400:
		return id, nil, apiErrorFromResponse(c.cfg.Model, status, nil, l.Response.Body, time.Now())
	case len(l.Error) > 0 && string(l.Error) != "null":
		return id, nil, apiErrorFromResponse(c.cfg.Model, 0, nil, l.Error, time.Now())
	case l.Response == nil:
		return id, nil, errors.New("parse batch line: neither response nor error")
	case status < 200 || status >= 300:
		return id, nil, fmt.Errorf("parse batch line: response status_code %d", status)
	}
	comp, err = c.decodeCompletion(l.Response.Body)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			return id, nil, ae
		}
		return id, nil, fmt.Errorf("parse batch line: %w", err)
	}
	return id, comp, nil
}
