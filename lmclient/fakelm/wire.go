package fakelm

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// answer is one response, ready to be written as JSON or as a stream.
type answer struct {
	id        string
	model     string
	created   int64
	tokens    []string
	finish    string
	promptLen int
}

func (a answer) text() string { return strings.Join(a.tokens, "") }

// usage mirrors OpenAI's usage block, details included.
type usage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
		AudioTokens  int64 `json:"audio_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens          int64 `json:"reasoning_tokens"`
		AudioTokens              int64 `json:"audio_tokens"`
		AcceptedPredictionTokens int64 `json:"accepted_prediction_tokens"`
		RejectedPredictionTokens int64 `json:"rejected_prediction_tokens"`
	} `json:"completion_tokens_details"`
}

func (a answer) usage() usage {
	var u usage
	u.PromptTokens = approxTokens(a.promptLen)
	u.CompletionTokens = approxTokens(len(a.text()))
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

type message struct {
	Role        string   `json:"role"`
	Content     string   `json:"content"`
	Refusal     *string  `json:"refusal"`
	Annotations []string `json:"annotations"`
}

type jsonChoice struct {
	Index        int             `json:"index"`
	Message      message         `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

type completion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []jsonChoice `json:"choices"`
	Usage             usage        `json:"usage"`
	ServiceTier       string       `json:"service_tier"`
	SystemFingerprint string       `json:"system_fingerprint"`
}

const fingerprint = "fp_fakelm"

var jsonNull = json.RawMessage("null")

// completionJSON is a's non-streamed chat completion body, the same for a
// live answer and a batch output line.
func completionJSON(a answer) []byte {
	body, _ := json.Marshal(completion{
		ID: a.id, Object: "chat.completion", Created: a.created, Model: a.model,
		Choices: []jsonChoice{{
			Message:  message{Role: "assistant", Content: a.text(), Annotations: []string{}},
			Logprobs: jsonNull, FinishReason: a.finish,
		}},
		Usage: a.usage(), ServiceTier: "default", SystemFingerprint: fingerprint,
	})
	return body
}

func writeJSONAnswer(w http.ResponseWriter, a answer, truncate bool) {
	body := completionJSON(a)
	w.Header().Set("Content-Type", "application/json")
	if truncate {
		// Promise the whole body, send half, then drop the connection.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	_, _ = w.Write(body)
}

type delta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chunkChoice struct {
	Index        int             `json:"index"`
	Delta        delta           `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type chunk struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	ServiceTier       string          `json:"service_tier"`
	SystemFingerprint string          `json:"system_fingerprint"`
	Choices           []chunkChoice   `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

// stream writes the answer as OpenAI SSE chunks: a role chunk, one chunk per
// token, a finish chunk, the usage chunk when asked for, then [DONE].
func (s *Server) stream(w http.ResponseWriter, r *http.Request, a answer, f Fault, includeUsage bool, ttft time.Duration, tps float64) {
	flusher, _ := w.(http.Flusher)
	paced := ttft > 0 || tps > 0
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	base := chunk{ID: a.id, Object: "chat.completion.chunk", Created: a.created, Model: a.model,
		ServiceTier: "default", SystemFingerprint: fingerprint}
	if includeUsage {
		base.Usage = jsonNull
	}
	buf := make([]byte, 0, 512)
	send := func(c chunk) {
		buf = append(buf[:0], "data: "...)
		b, _ := json.Marshal(c)
		buf = append(buf, b...)
		buf = append(buf, "\n\n"...)
		_, _ = w.Write(buf)
		if paced && flusher != nil {
			flusher.Flush()
		}
	}
	empty := ""
	first := base
	first.Choices = []chunkChoice{{Delta: delta{Role: "assistant", Content: &empty}, Logprobs: jsonNull}}
	send(first)
	if !sleepCtx(r.Context(), s.closing, ttft) {
		return
	}
	for i, tok := range a.tokens {
		if f.Kind == FaultTruncate && i == f.After {
			if flusher != nil {
				flusher.Flush()
			}
			panic(http.ErrAbortHandler) // cut the connection, no terminating chunk
		}
		if i > 0 && !sleepCtx(r.Context(), s.closing, pace(1, tps)) {
			return
		}
		c := base
		c.Choices = []chunkChoice{{Delta: delta{Content: &tok}, Logprobs: jsonNull}}
		send(c)
	}
	if f.Kind == FaultTruncate {
		panic(http.ErrAbortHandler)
	}
	last := base
	last.Choices = []chunkChoice{{Delta: delta{}, Logprobs: jsonNull, FinishReason: &a.finish}}
	send(last)
	if includeUsage {
		u, _ := json.Marshal(a.usage())
		uc := base
		uc.Choices = []chunkChoice{}
		uc.Usage = u
		send(uc)
	}
	_, _ = w.Write([]byte("data: [DONE]\n\n"))
	if flusher != nil {
		flusher.Flush()
	}
}
