package lmclient

import "testing"

// The auto rule follows LiteLLM's supports_response_schema (its model map
// and the providers that support it globally), as DSPy asks it.
func TestSupportsResponseSchema(t *testing.T) {
	t.Parallel()
	for model, want := range map[string]bool{
		// The wire vectors' profiles: a known OpenAI model yes, a served or
		// unknown name no.
		"openai/gpt-4o-mini":                true,
		"openai/my-served-model":            false,
		"hosted_vllm/my-served-model":       false,
		"hosted_vllm/gpt-4o-mini":           false,
		"gpt-4o-mini":                       true, // no provider: openai
		"openai/gpt-4o":                     true,
		"openai/gpt-4o-2024-08-06":          true,
		"openai/gpt-4o-2024-05-13":          false,
		"openai/gpt-4o-mini-audio-preview":  false,
		"openai/gpt-4o-realtime-preview":    false,
		"openai/gpt-4.1-nano":               true,
		"openai/gpt-5":                      true,
		"openai/gpt-5.1-chat-latest":        true,
		"openai/o1":                         true,
		"openai/o1-mini":                    false,
		"openai/o3-mini":                    true,
		"openai/o4-mini-2025-04-16":         true,
		"openai/gpt-4":                      false,
		"openai/gpt-4-turbo":                false,
		"openai/gpt-3.5-turbo":              false,
		"azure/gpt-4o":                      true,
		"azure/my-deployment":               false,
		"anthropic/claude-sonnet-4-5":       true,
		"anthropic/claude-3-haiku-20240307": true,
		"anthropic/claude-2.1":              false,
		"gemini/gemini-2.5-flash":           true,
		"gemini/gemini-1.0-pro":             false,
		"deepseek/deepseek-chat":            true,
		"fireworks_ai/anything":             true, // supported for every model
		"ollama/llama3":                     false,
		"ollama_chat/llama3":                false,
		"groq/llama-3.1-8b-instant":         false,
		"together_ai/x":                     false,
		"openrouter/openai/gpt-4o":          false,
		"mistral/mistral-large-latest":      false,
	} {
		if got := SupportsResponseSchema(model); got != want {
			t.Errorf("SupportsResponseSchema(%q) = %v, want %v", model, got, want)
		}
	}
}

// LM_STRUCTURED_OUTPUTS: on and off override the rule, auto (the default)
// follows it.
func TestClientStructuredOutputs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode, model string
		want        bool
	}{
		{"", "openai/gpt-4o-mini", true},
		{"auto", "openai/gpt-4o-mini", true},
		{"auto", "openai/my-served-model", false},
		{"on", "openai/my-served-model", true},
		{"off", "openai/gpt-4o-mini", false},
	} {
		c := newClient(t, Config{Model: tc.model, APIKey: "k", StructuredOutputs: tc.mode}, Deps{})
		if got := c.SupportsResponseSchema(); got != tc.want {
			t.Errorf("mode %q, model %s: SupportsResponseSchema() = %v, want %v", tc.mode, tc.model, got, tc.want)
		}
	}
	if _, err := New(Config{Model: "openai/gpt-4o-mini", APIKey: "k", StructuredOutputs: "maybe"}, Deps{}); err == nil {
		t.Error("StructuredOutputs \"maybe\" was accepted")
	}
}
