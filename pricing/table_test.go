package pricing_test

import (
	"testing"

	"github.com/qaqueue/qaqueue/pricing"
)

func TestLookup(t *testing.T) {
	t.Parallel()
	def := pricing.Default()
	// A table where gpt-4o-mini has two providers, a bare key, and a
	// snapshot priced apart from its family.
	custom, err := pricing.Parse(`{
		"azure/gpt-4o-mini": {"input": 0.165, "output": 0.66},
		"my-model": {"input": 1, "output": 2},
		"openai/gpt-4o-2024-05-13": {"input": 5, "output": 15}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	// A bare key beside a provider's: each query finds the nearest.
	bare, err := pricing.Parse(`{"gpt-4o-mini": {"input": 9, "output": 9}}`)
	if err != nil {
		t.Fatal(err)
	}
	price := func(tb pricing.Table, model string) pricing.Price {
		p, ok := tb.Lookup(model)
		if !ok {
			t.Fatalf("no price for key %s", model)
		}
		return p
	}
	tests := []struct {
		name  string
		table pricing.Table
		model string
		want  string // the key whose price is found; "" for none
	}{
		{"the key", def, "openai/gpt-4o-mini", "openai/gpt-4o-mini"},
		{"a bare name", def, "gpt-4o-mini", "openai/gpt-4o-mini"},
		{"an OpenAI snapshot", def, "openai/gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"},
		{"a bare OpenAI snapshot", def, "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"},
		{"a snapshot is not a prefix match", def, "gpt-4o-2024-08-06", "openai/gpt-4o"},
		{"an Anthropic snapshot", def, "anthropic/claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"},
		{"another provider's model", def, "azure/gpt-4o-mini", ""},
		{"a longer name is not a prefix match", def, "gpt-4o-mini-tts", ""},
		{"a shorter name is not a prefix match", def, "gpt-4", ""},
		{"a name that only looks dated", def, "gpt-4o-mini-2024", ""},
		{"a provider's own key wins", custom, "azure/gpt-4o-mini", "azure/gpt-4o-mini"},
		{"a bare name of two providers is ambiguous", custom, "gpt-4o-mini", ""},
		{"a bare snapshot of two providers is ambiguous", custom, "gpt-4o-mini-2024-07-18", ""},
		{"a bare key matches any provider", custom, "hosted_vllm/my-model", "my-model"},
		{"a snapshot's own key before its family", custom, "gpt-4o-2024-05-13", "openai/gpt-4o-2024-05-13"},
		{"other snapshots still find the family", custom, "gpt-4o-2024-11-20", "openai/gpt-4o"},
		{"a provider's key before a bare one", bare, "openai/gpt-4o-mini", "openai/gpt-4o-mini"},
		{"a provider's family before a bare one", bare, "openai/gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"},
		{"a bare key for a provider without its own", bare, "azure/gpt-4o-mini", "gpt-4o-mini"},
		{"a bare key for a bare model", bare, "gpt-4o-mini-2024-07-18", "gpt-4o-mini"},
		{"an empty model", def, "", ""},
		{"a provider alone", def, "openai/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := tt.table.Lookup(tt.model)
			switch {
			case tt.want == "" && ok:
				t.Errorf("Lookup(%q) = %+v; want no price", tt.model, got)
			case tt.want != "" && !ok:
				t.Errorf("Lookup(%q) found no price; want %s's", tt.model, tt.want)
			case tt.want != "" && got != price(tt.table, tt.want):
				t.Errorf("Lookup(%q) = %+v; want %s's %+v", tt.model, got, tt.want, price(tt.table, tt.want))
			}
		})
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	table, err := pricing.Parse(`{"a/x": {"input": 1, "output": 1}}`)
	if err != nil {
		t.Fatal(err)
	}
	models := table.Models()
	if len(models) != len(pricing.Default().Models())+1 || models[0] != "a/x" {
		t.Errorf("Models() = %v; want the defaults and a/x, sorted", models)
	}
}
