package pricing_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/pricing"
)

func TestPriceUsage(t *testing.T) {
	t.Parallel()
	table := pricing.Default()
	// gpt-4o-mini: $0.15 input, $0.075 cached, $0.60 output; batch half.
	// claude-haiku-4-5: $1 input, $5 output.
	tests := []struct {
		name   string
		usage  string
		tokens jobs.TokenCount
		live   *int64
		batch  *int64
	}{
		{"one model", `{"openai/gpt-4o-mini":{"prompt_tokens":1000,"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":400}}}`,
			jobs.TokenCount{Input: 1000, CachedInput: 400, Output: 100}, ptr(90 + 30 + 60), ptr(45 + 15 + 30)},
		{"two models add up", `{"openai/gpt-4o-mini":{"prompt_tokens":1000,"completion_tokens":100},"anthropic/claude-haiku-4-5-20251001":{"prompt_tokens":10,"total_tokens":20}}`,
			jobs.TokenCount{Input: 1010, Output: 110}, ptr(150 + 60 + 10 + 50), ptr(75 + 30 + 5 + 25)},
		{"a model without a price: unknown", `{"openai/gpt-4o-mini":{"prompt_tokens":1000},"local/llama":{"prompt_tokens":5,"completion_tokens":5}}`,
			jobs.TokenCount{Input: 1005, Output: 5}, nil, nil},
		{"the cache: no usage, no cost", `{}`, jobs.TokenCount{}, ptr(0), ptr(0)},
		{"TRACK_USAGE=false's null", `null`, jobs.TokenCount{}, ptr(0), ptr(0)},
	}
	for _, tc := range tests {
		byModel, err := pricing.ParseUsage(json.RawMessage(tc.usage))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.tokens, pricing.Tokens(byModel)); diff != "" {
			t.Errorf("%s: tokens (-want +got):\n%s", tc.name, diff)
		}
		if diff := cmp.Diff(tc.live, table.CostOfModels(byModel, false)); diff != "" {
			t.Errorf("%s: live cost (-want +got):\n%s", tc.name, diff)
		}
		if diff := cmp.Diff(tc.batch, table.CostOfModels(byModel, true)); diff != "" {
			t.Errorf("%s: batch cost (-want +got):\n%s", tc.name, diff)
		}
	}
	if _, err := pricing.ParseUsage(json.RawMessage(`{"m":[1]}`)); err == nil {
		t.Error("ParseUsage read a usage block that is not an object")
	}
}

func TestAdd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b, want *int64
	}{
		{ptr(2), ptr(3), ptr(5)},
		{ptr(2), nil, nil},
		{nil, ptr(3), nil},
		{ptr(math.MaxInt64 - 1), ptr(5), ptr(math.MaxInt64)}, // saturates, as one cost does
	} {
		if diff := cmp.Diff(tc.want, pricing.Add(tc.a, tc.b)); diff != "" {
			t.Errorf("Add(%v, %v) (-want +got):\n%s", tc.a, tc.b, diff)
		}
	}
}

// FuzzParseUsage: whatever a stored result's usage holds, reading it does
// not panic, and what it counts and costs is never negative.
func FuzzParseUsage(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `{"openai/gpt-4o-mini":{"prompt_tokens":1e30,"completion_tokens":-4}}`,
		`{"m":{"prompt_tokens":"7","prompt_tokens_details":{"cached_tokens":99}}}`, `[1]`} {
		f.Add(s)
	}
	table := pricing.Default()
	f.Fuzz(func(t *testing.T, s string) {
		byModel, err := pricing.ParseUsage(json.RawMessage(s))
		if err != nil {
			return
		}
		tk := pricing.Tokens(byModel)
		if tk.Input < 0 || tk.CachedInput < 0 || tk.Output < 0 || tk.CachedInput > tk.Input {
			t.Errorf("%s: tokens %+v", s, tk)
		}
		if c := table.CostOfModels(byModel, false); c != nil && *c < 0 {
			t.Errorf("%s: cost %d", s, *c)
		}
	})
}

func ptr(n int64) *int64 { return &n }
