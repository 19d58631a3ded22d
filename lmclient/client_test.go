package lmclient

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/qaqueue/qaqueue/program"
)

func TestCompleteJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	comp, err := b.c.Complete(ctxT(t), chatRequest("What is the capital of France?"))
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if !hasMarkers(comp.Text) || comp.FinishReason != "stop" || comp.CacheHit {
		t.Errorf("completion = %+v", comp)
	}
	if got := b.srv.RequestsTo("/v1/chat/completions"); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
	var wire map[string]any
	if err := json.Unmarshal(b.srv.LastRequest(), &wire); err != nil {
		t.Fatal(err)
	}
	if wire["model"] != "gpt-4o-mini" {
		t.Errorf("wire model = %v, want the name without the provider", wire["model"])
	}
	for _, k := range []string{"temperature", "max_tokens", "stream", "stream_options", "response_format"} {
		if _, ok := wire[k]; ok {
			t.Errorf("wire request has %q; unset values must be left out", k)
		}
	}
}

func TestUsageShape(t *testing.T) {
	t.Parallel()
	b := setup(t)
	comp, err := b.c.Complete(ctxT(t), chatRequest("Why is the sky blue?"))
	if err != nil {
		t.Fatal(err)
	}
	u := comp.Usage
	p, ok1 := u["prompt_tokens"].(int64)
	c, ok2 := u["completion_tokens"].(int64)
	tot, ok3 := u["total_tokens"].(int64)
	if !ok1 || !ok2 || !ok3 || p <= 0 || c <= 0 || tot != p+c {
		t.Fatalf("usage tokens = %#v", u)
	}
	want := program.Usage{"cached_tokens": int64(0), "audio_tokens": int64(0)}
	if diff := cmp.Diff(want, u["prompt_tokens_details"]); diff != "" {
		t.Errorf("prompt_tokens_details (-want +got):\n%s", diff)
	}
	if d, ok := u["completion_tokens_details"].(program.Usage); !ok || d["reasoning_tokens"] != int64(0) {
		t.Errorf("completion_tokens_details = %#v", u["completion_tokens_details"])
	}
	// Merge-ready: two calls add up key by key.
	merged := MergeUsage(MergeUsage(nil, u), u)
	if merged["total_tokens"] != 2*tot {
		t.Errorf("merged total = %v, want %d", merged["total_tokens"], 2*tot)
	}
}

func TestCompleteStream(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req, deltas := streamed(chatRequest("How do tides work on Earth?"))
	comp, err := b.c.Complete(ctxT(t), req)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if len(*deltas) < 10 {
		t.Errorf("got %d deltas, want one per token", len(*deltas))
	}
	if got := strings.Join(*deltas, ""); got != comp.Text || !hasMarkers(got) {
		t.Errorf("deltas join to %q, text %q", got, comp.Text)
	}
	if comp.FinishReason != "stop" {
		t.Errorf("finish = %q", comp.FinishReason)
	}
	if _, ok := comp.Usage["completion_tokens_details"].(program.Usage); !ok {
		t.Errorf("stream usage = %#v, want the usage chunk's details", comp.Usage)
	}
	var wire struct {
		Stream        bool `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	_ = json.Unmarshal(b.srv.LastRequest(), &wire)
	if !wire.Stream || !wire.StreamOptions.IncludeUsage {
		t.Errorf("wire stream = %+v, want stream with include_usage", wire)
	}
	// Deterministic: the same request streams the same text.
	req2, _ := streamed(chatRequest("How do tides work on Earth?"))
	comp2, err := b.c.Complete(ctxT(t), req2)
	if err != nil || comp2.Text != comp.Text {
		t.Errorf("second answer differs: %v", err)
	}
}

func TestResponseFormatJSONSchema(t *testing.T) {
	t.Parallel()
	b := setup(t)
	schema := `{"additionalProperties": false, "properties": {"answer": {"title": "Answer", "type": "string"}}, "required": ["answer"], "title": "DSPyProgramOutputs", "type": "object"}`
	req := &program.Request{
		Messages:       []program.Message{{Role: "user", Content: "[[ ## question ## ]]\nWhat is Go?\n\nRespond with a JSON object in the following order of fields: `answer`, then `question_type`."}},
		ResponseFormat: &program.ResponseFormat{Type: "json_schema", Name: "DSPyProgramOutputs", Schema: json.RawMessage(schema), Strict: true},
	}
	comp, err := b.c.Complete(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]string
	if err := json.Unmarshal([]byte(comp.Text), &out); err != nil || out["answer"] == "" || out["question_type"] == "" {
		t.Errorf("answer %q is not the JSON object asked for: %v", comp.Text, err)
	}
	var wire struct {
		ResponseFormat struct {
			Type       string `json:"type"`
			JSONSchema struct {
				Name   string         `json:"name"`
				Strict bool           `json:"strict"`
				Schema map[string]any `json:"schema"`
			} `json:"json_schema"`
		} `json:"response_format"`
	}
	_ = json.Unmarshal(b.srv.LastRequest(), &wire)
	rf := wire.ResponseFormat
	if rf.Type != "json_schema" || rf.JSONSchema.Name != "DSPyProgramOutputs" || !rf.JSONSchema.Strict || rf.JSONSchema.Schema["title"] != "DSPyProgramOutputs" {
		t.Errorf("wire response_format = %+v", rf)
	}
}

func TestReasoningModel(t *testing.T) {
	t.Parallel()
	n := 16000
	b := setup(t, func(c *Config, _ *Deps) { c.Model = "openai/o3-mini"; c.MaxTokens = &n })
	if _, err := b.c.Complete(ctxT(t), chatRequest("What is 2+2?")); err != nil {
		t.Fatal(err)
	}
	var wire map[string]any
	_ = json.Unmarshal(b.srv.LastRequest(), &wire)
	if wire["max_completion_tokens"] != float64(16000) || wire["max_tokens"] != nil {
		t.Errorf("wire = %v, want max_completion_tokens only", wire)
	}
	small, temp := 1000, 0.5
	for _, cfg := range []Config{
		{Model: "openai/o3-mini", MaxTokens: &small, APIKey: "k"},
		{Model: "openai/gpt-5-mini", Temperature: &temp, APIKey: "k"},
	} {
		_, err := New(cfg, Deps{})
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("New(%+v) = %v, want a ConfigError", cfg, err)
		}
	}
}

func TestIsReasoningModel(t *testing.T) {
	t.Parallel()
	for model, want := range map[string]bool{
		"openai/o1": true, "openai/o3-mini": true, "o4-mini-2025-04-16": true, "openai/gpt-5": true,
		"openai/gpt-5-nano": true, "openai/gpt-5-chat-latest": false, "openai/gpt-4o-mini": false,
		"openai/o2": false, "azure/o3-pro": true, "openai/gpt-5.1": false,
	} {
		if got := IsReasoningModel(model); got != want {
			t.Errorf("IsReasoningModel(%q) = %v, want %v", model, got, want)
		}
	}
}

// The response_format reaches the wire as LiteLLM and the openai client
// write it for DSPy's DSPyProgramOutputs: type, then json_schema with
// schema, name and strict in that order, the schema's bytes unchanged
// (shared/dspy/vectors-typed/wire).
func TestResponseFormatWireBytes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	schema := `{"$defs":{"C":{"description":"a < b & c","properties":{"p":{"title":"P","type":"integer"}},"required":["p"],"title":"C","type":"object","additionalProperties":false}},"additionalProperties":false,"properties":{"c":{"$ref":"#/$defs/C"},"x":{"exclusiveMinimum":2.5e-05,"title":"X","type":"number"}},"required":["c","x"],"title":"DSPyProgramOutputs","type":"object"}`
	req := &program.Request{
		Messages:       []program.Message{{Role: "user", Content: "hi"}},
		ResponseFormat: &program.ResponseFormat{Type: "json_schema", Name: "DSPyProgramOutputs", Schema: json.RawMessage(schema), Strict: true},
	}
	if _, err := b.c.Complete(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	want := `"response_format":{"type":"json_schema","json_schema":{"schema":` + schema + `,"name":"DSPyProgramOutputs","strict":true}}`
	if body := string(b.srv.LastRequest()); !strings.Contains(body, want) {
		t.Errorf("body %s\nlacks %s", body, want)
	}
}
