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
	pr, err := parseRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, Fault{}, err.Error(), "invalid_request_error", "")
		return
	}
	if wait, ok := s.admit(time.Now()); !ok {
		writeError(w, http.StatusTooManyRequests, Fault{RetryAfter: wait},
			"Rate limit reached for requests per minute (fakelm RPM limit).", "requests", "rate_limit_exceeded")
		return
	}
	d, hasDirective, derr := parseDirective(pr.lastUser)
	if derr != nil {
		writeError(w, http.StatusBadRequest, Fault{}, derr.Error(), "invalid_request_error", "")
		return
	}
	fault := s.nextFault(d, hasDirective, pr.fingerprnt)
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
		writeError(w, status, fault, msg, typ, code)
		return
	case FaultContextWindow:
		writeError(w, http.StatusBadRequest, fault,
			"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
			"invalid_request_error", "context_length_exceeded")
		return
	case FaultStall:
		s.stall(r.Context(), fault.For)
		if fault.For == 0 || r.Context().Err() != nil {
			return
		}
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
	ans := answer{
		id:        fmt.Sprintf("chatcmpl-fake%016x", pr.fingerprnt),
		model:     pr.req.Model,
		created:   time.Now().Unix(),
		tokens:    tokens,
		finish:    finish,
		promptLen: pr.promptLen,
	}
	ttft, tps := s.snapshot()
	if pr.req.Stream {
		includeUsage := pr.req.StreamOptions != nil && pr.req.StreamOptions.IncludeUsage
		s.stream(w, r, ans, fault, includeUsage, ttft, tps)
		return
	}
	if !sleepCtx(r.Context(), s.closing, ttft+pace(len(tokens)-1, tps)) {
		return
	}
	writeJSONAnswer(w, ans, fault.Kind == FaultTruncate)
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
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(f.RetryAfter.Seconds())), 10))
		w.Header().Set("retry-after-ms", strconv.FormatInt(f.RetryAfter.Milliseconds(), 10))
	}
	var codeVal any
	if code != "" {
		codeVal = code
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": nil, "code": codeVal,
	}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
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
