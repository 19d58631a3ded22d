package lmclient

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolveProvider(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a", "GEMINI_API_KEY": "g", "GROQ_API_KEY": "gr",
		"TOGETHER_API_KEY": "tg", "OPENROUTER_API_KEY": "or", "DEEPSEEK_API_KEY": "ds", "MISTRAL_API_KEY": "mi",
		"FIREWORKS_AI_API_KEY": "fw", "AZURE_API_KEY": "az", "AZURE_API_BASE": "https://x.openai.azure.com",
		"AZURE_API_VERSION": "2024-10-21",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		model, base, key string
		want             Provider
	}{
		{"openai/gpt-4o-mini", "", "", Provider{Name: "openai", BaseURL: "https://api.openai.com/v1", APIKey: "sk-o", WireModel: "gpt-4o-mini"}},
		{"gpt-4o-mini", "", "", Provider{Name: "openai", BaseURL: "https://api.openai.com/v1", APIKey: "sk-o", WireModel: "gpt-4o-mini"}},
		{"openai/my-model", "http://10.0.0.1:8000/v1/", "k", Provider{Name: "openai", BaseURL: "http://10.0.0.1:8000/v1", APIKey: "k", WireModel: "my-model"}},
		{"anthropic/claude-sonnet-4", "", "", Provider{Name: "anthropic", BaseURL: "https://api.anthropic.com/v1", APIKey: "sk-a", WireModel: "claude-sonnet-4"}},
		{"gemini/gemini-2.0-flash", "", "", Provider{Name: "gemini", BaseURL: "https://generativelanguage.googleapis.com/v1beta/openai", APIKey: "g", WireModel: "gemini-2.0-flash"}},
		{"groq/llama-3.1-8b-instant", "", "", Provider{Name: "groq", BaseURL: "https://api.groq.com/openai/v1", APIKey: "gr", WireModel: "llama-3.1-8b-instant"}},
		{"together_ai/meta-llama/Llama-3-8b", "", "", Provider{Name: "together_ai", BaseURL: "https://api.together.xyz/v1", APIKey: "tg", WireModel: "meta-llama/Llama-3-8b"}},
		{"openrouter/openai/gpt-4o", "", "", Provider{Name: "openrouter", BaseURL: "https://openrouter.ai/api/v1", APIKey: "or", WireModel: "openai/gpt-4o"}},
		{"deepseek/deepseek-chat", "", "", Provider{Name: "deepseek", BaseURL: "https://api.deepseek.com/v1", APIKey: "ds", WireModel: "deepseek-chat"}},
		{"mistral/mistral-small", "", "", Provider{Name: "mistral", BaseURL: "https://api.mistral.ai/v1", APIKey: "mi", WireModel: "mistral-small"}},
		{"fireworks_ai/llama-v3p1-8b", "", "", Provider{Name: "fireworks_ai", BaseURL: "https://api.fireworks.ai/inference/v1", APIKey: "fw", WireModel: "accounts/fireworks/models/llama-v3p1-8b"}},
		{"ollama_chat/llama3", "", "", Provider{Name: "ollama_chat", BaseURL: "http://localhost:11434/v1", WireModel: "llama3"}},
		{"hosted_vllm/qwen", "http://vllm:8000/v1", "", Provider{Name: "hosted_vllm", BaseURL: "http://vllm:8000/v1", WireModel: "qwen"}},
		{"azure/my-deploy", "", "", Provider{Name: "azure", BaseURL: "https://x.openai.azure.com/openai/deployments/my-deploy", APIKey: "az", WireModel: "my-deploy", AzureAPIVersion: "2024-10-21"}},
	}
	for _, tt := range tests {
		got, err := ResolveProvider(tt.model, tt.base, tt.key, "", lookup)
		if err != nil {
			t.Errorf("ResolveProvider(%q): %v", tt.model, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ResolveProvider(%q) (-want +got):\n%s", tt.model, diff)
		}
	}
}

func TestResolveProviderErrors(t *testing.T) {
	t.Parallel()
	none := func(string) (string, bool) { return "", false }
	for _, tt := range []struct{ model, base, mention string }{
		{"openai/gpt-4o-mini", "", "set OPENAI_API_KEY or LM_API_KEY"},
		{"anthropic/claude", "", "ANTHROPIC_API_KEY"},
		{"nosuch/model", "", `unknown provider "nosuch"`},
		{"hosted_vllm/qwen", "", "LM_API_BASE"},
		{"azure/dep", "https://x.openai.azure.com", "AZURE_API_KEY"},
		{"openai/", "", "no model name"},
	} {
		_, err := ResolveProvider(tt.model, tt.base, "", "", none)
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("ResolveProvider(%q) = %v, want a ConfigError mentioning %q", tt.model, err, tt.mention)
		}
	}
	// A loopback server (the fake LM) needs no key.
	if p, err := ResolveProvider("openai/fake", "http://127.0.0.1:8090/v1", "", "", none); err != nil || p.APIKey != "" {
		t.Errorf("loopback without key: %+v, %v", p, err)
	}
	_, err := ResolveProvider("azure/dep", "https://x.openai.azure.com", "k", "", none)
	if err == nil || !strings.Contains(err.Error(), "AZURE_API_VERSION") {
		t.Errorf("azure without version: %v", err)
	}
}

// TestAzureWire calls an Azure-style deployment path on the fake LM.
func TestAzureWire(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config, _ *Deps) {
		c.Model, c.AzureAPIVersion = "azure/my-deploy", "2024-10-21"
		c.APIBase = strings.TrimSuffix(c.APIBase, "/v1")
	})
	b.srv.SetAPIKey("sk-test") // accepted only as Azure's api-key header here
	if _, err := b.c.Complete(ctxT(t), chatRequest("Azure?")); err != nil {
		t.Fatal(err)
	}
	if n := b.srv.RequestsTo("/openai/deployments/my-deploy/chat/completions"); n != 1 {
		t.Errorf("deployment path requests = %d (paths %v)", n, b.srv.Paths())
	}
}

// TestKeylessLocal calls a loopback server without any key.
func TestKeylessLocal(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config, _ *Deps) { c.APIKey = "" })
	if _, err := b.c.Complete(ctxT(t), chatRequest("No key?")); err != nil {
		t.Fatalf("keyless call: %v", err)
	}
}
