package lmclient

import "strings"

// LM_STRUCTURED_OUTPUTS values.
const (
	StructuredAuto = "auto"
	StructuredOn   = "on"
	StructuredOff  = "off"
)

// SupportsResponseSchema tells the program whether to ask this client's
// model for structured outputs (program.ResponseSchemaSupporter): always
// with LM_STRUCTURED_OUTPUTS=on, never with off, and with auto as DSPy
// decides it (the package's SupportsResponseSchema).
func (c *Client) SupportsResponseSchema() bool {
	switch c.cfg.StructuredOutputs {
	case StructuredOn:
		return true
	case StructuredOff:
		return false
	}
	return SupportsResponseSchema(c.cfg.Model)
}

// SupportsResponseSchema is DSPy's lm.supports_response_schema for a
// DSPy model string: LiteLLM's supports_response_schema(model,
// custom_llm_provider=<prefix>), which is true for the providers that
// support it for every model and otherwise reads supports_response_schema
// from LiteLLM's model map, false for a name the map lacks.
//
// The model map is large and changes; this is its rule for the providers
// lmclient speaks to, as rules on names (from litellm's
// model_prices_and_context_window.json, 2026):
//
//   - fireworks_ai: every model (LiteLLM lists it among the providers that
//     support a response schema globally, with predibase, lm_studio and
//     nebius, which lmclient does not speak to);
//   - openai (and a bare name), azure (the deployment name, which LiteLLM
//     looks up as a model name): gpt-4o and gpt-4o-mini (not the
//     2024-05-13 snapshot, nor audio or realtime variants), gpt-4.1, gpt-5,
//     o1 (not o1-mini or o1-preview), o3, o4-mini; not gpt-4, gpt-4-turbo,
//     gpt-3.5;
//   - anthropic: Claude 3 and later; gemini: Gemini 1.5 and later, not the
//     live or native-audio models; deepseek: deepseek-chat and
//     deepseek-reasoner;
//   - everything else, hosted_vllm/..., ollama/..., openrouter/... and any
//     name the map lacks (an openai/<served-model> on a local server): no,
//     so JSON mode. LM_STRUCTURED_OUTPUTS=on asks anyway.
func SupportsResponseSchema(model string) bool {
	provider, name, found := strings.Cut(model, "/")
	if !found {
		provider, name = "openai", model
	}
	switch provider {
	case "fireworks_ai":
		return true
	case "openai", "azure":
		return openAISchemaModel(name)
	case "anthropic":
		return strings.HasPrefix(name, "claude-") && !strings.HasPrefix(name, "claude-2") && !strings.HasPrefix(name, "claude-instant")
	case "gemini":
		return strings.HasPrefix(name, "gemini-") && !strings.HasPrefix(name, "gemini-1.0") && name != "gemini-pro" &&
			!strings.Contains(name, "-live") && !strings.Contains(name, "native-audio")
	case "deepseek":
		return name == "deepseek-chat" || name == "deepseek-reasoner"
	}
	return false
}

// openAISchemaModel is the model map's supports_response_schema for an
// OpenAI model name.
func openAISchemaModel(name string) bool {
	if strings.Contains(name, "audio") || strings.Contains(name, "realtime") || name == "gpt-4o-2024-05-13" {
		return false
	}
	if name == "o1" || strings.HasPrefix(name, "o1-20") {
		return true
	}
	for _, p := range []string{"gpt-4o", "gpt-4.1", "gpt-5", "o3", "o4-mini"} {
		if name == p || strings.HasPrefix(name, p+"-") || (p == "gpt-5" && strings.HasPrefix(name, "gpt-5.")) {
			return true
		}
	}
	return false
}
