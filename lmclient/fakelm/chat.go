package fakelm

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
)

// chatRequest is the part of an OpenAI chat completion request the fake reads.
type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	ResponseFormat *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
}

// contentText reads a message content that is a string or a list of parts.
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) == nil {
		var out string
		for _, p := range parts {
			out += p.Text
		}
		return out
	}
	return ""
}

// parsedRequest is a decoded request with what the answer depends on.
type parsedRequest struct {
	req        chatRequest
	lastUser   string
	system     string // the first system message: DSPy's field list
	schema     json.RawMessage
	allText    string
	promptLen  int
	wantJSON   bool
	maxTokens  int64
	fingerprnt uint64
}

func parseRequest(body []byte) (parsedRequest, error) {
	var pr parsedRequest
	if err := json.Unmarshal(body, &pr.req); err != nil {
		return pr, fmt.Errorf("decode request: %w", err)
	}
	if len(pr.req.Messages) == 0 {
		return pr, fmt.Errorf("decode request: messages is empty")
	}
	h := fnv.New64a()
	for _, m := range pr.req.Messages {
		text := contentText(m.Content)
		pr.promptLen += len(text)
		_, _ = io.WriteString(h, m.Role+"\x00"+text+"\x00")
		pr.allText += text + "\n"
		if m.Role == "user" {
			pr.lastUser = text
		}
		if m.Role == "system" && pr.system == "" {
			pr.system = text
		}
	}
	pr.fingerprnt = h.Sum64()
	if rf := pr.req.ResponseFormat; rf != nil && (rf.Type == "json_object" || rf.Type == "json_schema") {
		pr.wantJSON = true
		if rf.JSONSchema != nil {
			pr.schema = rf.JSONSchema.Schema
		}
	}
	if pr.req.MaxCompletionTokens != nil {
		pr.maxTokens = *pr.req.MaxCompletionTokens
	} else if pr.req.MaxTokens != nil {
		pr.maxTokens = *pr.req.MaxTokens
	}
	return pr, nil
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away
	}
	s.mu.Lock()
	s.lastBody = body
	s.mu.Unlock()
	o := s.decide(body, true)
	if o.status != 0 {
		writeError(w, o.status, o.fault, o.msg, o.typ, o.code)
		return
	}
	if o.fault.Kind == FaultStall {
		s.stall(r.Context(), o.fault.For)
		if o.fault.For == 0 || r.Context().Err() != nil {
			return
		}
	}
	ttft, tps := s.snapshot()
	if o.stream {
		s.stream(w, r, o.ans, o.fault, o.includeUsage, ttft, tps)
		return
	}
	if !sleepCtx(r.Context(), s.closing, ttft+pace(len(o.ans.tokens)-1, tps)) {
		return
	}
	writeJSONAnswer(w, o.ans, o.fault.Kind == FaultTruncate)
}

// outcome is how the fake answers one chat completion request: an error
// (status set) or an answer, with the fault that shapes its delivery.
type outcome struct {
	status         int // non-zero: answer this OpenAI-style error
	msg, typ, code string
	fault          Fault
	ans            answer
	stream         bool
	includeUsage   bool
}

// decide answers a chat completion request body. A live call (live) is
// subject to the RPM limit and takes queued faults; a batch line is not and
// does not, but both honour the directives in the messages, so a line is
// answered exactly as the same live request would be.
func (s *Server) decide(body []byte, live bool) outcome {
	pr, err := parseRequest(body)
	if err != nil {
		return outcome{status: http.StatusBadRequest, msg: err.Error(), typ: "invalid_request_error"}
	}
	if live {
		if wait, ok := s.admit(time.Now()); !ok {
			return outcome{status: http.StatusTooManyRequests, fault: Fault{RetryAfter: wait},
				msg: "Rate limit reached for requests per minute (fakelm RPM limit).", typ: "requests", code: "rate_limit_exceeded"}
		}
	}
	d, hasDirective, derr := parseDirective(pr.lastUser)
	if derr != nil {
		return outcome{status: http.StatusBadRequest, msg: derr.Error(), typ: "invalid_request_error"}
	}
	fault := s.nextFault(d, hasDirective, pr.fingerprnt, live)
	switch fault.Kind {
	case FaultStatus:
		status := fault.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		if status == http.StatusTooManyRequests && fault.RetryAfter == 0 {
			fault.RetryAfter = time.Second
		}
		msg, typ, code := errorText(status)
		return outcome{status: status, fault: fault, msg: msg, typ: typ, code: code}
	case FaultContextWindow:
		return outcome{status: http.StatusBadRequest, fault: fault,
			msg: "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
			typ: "invalid_request_error", code: "context_length_exceeded"}
	}

	p := parsePrompt(pr.lastUser)
	a := newAnswerer(pr.allText, p).typed(pr.system, pr.schema)
	text := a.text(p, pr.wantJSON)
	if fault.Kind == FaultGarbage {
		text = a.garbageText()
	}
	tokens := tokenize(text)
	finish := "stop"
	if pr.maxTokens > 0 && int64(len(tokens)) > pr.maxTokens {
		tokens = tokens[:pr.maxTokens]
		finish = "length"
	}
	return outcome{
		fault: fault,
		ans: answer{
			id:        fmt.Sprintf("chatcmpl-fake%016x", pr.fingerprnt),
			model:     pr.req.Model,
			created:   s.now().Unix(),
			tokens:    tokens,
			finish:    finish,
			promptLen: pr.promptLen,
		},
		stream:       pr.req.Stream,
		includeUsage: pr.req.StreamOptions != nil && pr.req.StreamOptions.IncludeUsage,
	}
}

// stall waits until ctx is done, the server closes, or d passes (d > 0).
func (s *Server) stall(ctx context.Context, d time.Duration) {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
	case <-s.closing:
	case <-timeout:
	}
}

// pace is how long n tokens take at tps tokens per second.
func pace(n int, tps float64) time.Duration {
	if tps <= 0 || n <= 0 {
		return 0
	}
	return time.Duration(float64(n) / tps * float64(time.Second))
}

// sleepCtx waits d; false when the request or the server ended first.
func sleepCtx(ctx context.Context, closing <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-closing:
		return false
	}
}

func errorText(status int) (msg, typ, code string) {
	switch {
	case status == http.StatusTooManyRequests:
		return "Rate limit reached for requests (fakelm fault).", "requests", "rate_limit_exceeded"
	case status == http.StatusUnauthorized:
		return "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
	case status == http.StatusNotFound:
		return "The model does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"
	case status >= 500:
		return "The server had an error while processing your request (fakelm fault).", "server_error", ""
	}
	return "Bad request (fakelm fault).", "invalid_request_error", ""
}

// writeError answers an OpenAI-style error body.
func writeError(w http.ResponseWriter, status int, f Fault, msg, typ, code string) {
	writeParamError(w, status, f, msg, typ, code, "")
}

// writeParamError is writeError naming the request parameter at fault.
func writeParamError(w http.ResponseWriter, status int, f Fault, msg, typ, code, param string) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(f.RetryAfter.Seconds())), 10))
		w.Header().Set("retry-after-ms", strconv.FormatInt(f.RetryAfter.Milliseconds(), 10))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorJSON(msg, typ, code, param))
}

// errorJSON is OpenAI's error body; code and param are null when empty.
func errorJSON(msg, typ, code, param string) []byte {
	var codeVal, paramVal any
	if code != "" {
		codeVal = code
	}
	if param != "" {
		paramVal = param
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": paramVal, "code": codeVal,
	}})
	return body
}

func (s *Server) models(w http.ResponseWriter) {
	s.mu.Lock()
	names := append([]string(nil), s.cfg.Models...)
	s.mu.Unlock()
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	out := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list"}
	for _, n := range names {
		out.Data = append(out.Data, model{ID: n, Object: "model", Created: 1700000000, OwnedBy: "fakelm"})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
