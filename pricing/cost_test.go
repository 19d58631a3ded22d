package pricing_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/qaqueue/qaqueue/pricing"
	"github.com/qaqueue/qaqueue/program"
)

func TestCost(t *testing.T) {
	t.Parallel()
	details := func(cached any) program.Usage { return program.Usage{"cached_tokens": cached} }
	orderedDetails := program.NewMap()
	orderedDetails.Set("cached_tokens", int64(400))
	// gpt-4o-mini: $0.15 input, $0.075 cached, $0.60 output; batch half.
	const mini = "openai/gpt-4o-mini"
	tests := []struct {
		name  string
		model string
		usage program.Usage
		batch bool
		want  int64
	}{
		{"live", mini, program.Usage{"prompt_tokens": int64(1000), "completion_tokens": int64(500), "total_tokens": int64(1500)}, false, 450},
		{"batch is half", mini, program.Usage{"prompt_tokens": int64(1000), "completion_tokens": int64(500)}, true, 225},
		// 600 uncached at 0.15 + 400 cached at 0.075 = 90 + 30, not 150 + 30.
		{"cached input at the cached price only", mini, program.Usage{"prompt_tokens": int64(1000), "prompt_tokens_details": details(int64(400))}, false, 120},
		{"cached input at the batch cached price", mini, program.Usage{"prompt_tokens": int64(1000), "prompt_tokens_details": details(int64(400))}, true, 60},
		{"details as map[string]any", mini, program.Usage{"prompt_tokens": int64(1000), "prompt_tokens_details": map[string]any{"cached_tokens": int64(400)}}, false, 120},
		{"details as an ordered map", mini, program.Usage{"prompt_tokens": int64(1000), "prompt_tokens_details": orderedDetails}, false, 120},
		{"null details", mini, program.Usage{"prompt_tokens": int64(1000), "prompt_tokens_details": nil}, false, 150},
		{"cached above prompt is capped", mini, program.Usage{"prompt_tokens": int64(1000), "prompt_tokens_details": details(int64(5000))}, false, 75},
		{"float64 counts", mini, program.Usage{"prompt_tokens": 1000.0, "completion_tokens": 500.0}, false, 450},
		{"json.Number counts", mini, program.Usage{"prompt_tokens": json.Number("1000"), "completion_tokens": json.Number("5e2")}, false, 450},
		// MaxInt64 tokens × 150000 µ$/M = 1383505805528216371.05 µ$, exact.
		{"BigInt count saturates at MaxInt64 tokens", mini, program.Usage{"prompt_tokens": program.BigInt("99999999999999999999999")}, false, 1383505805528216371},
		{"negative counts are zero", mini, program.Usage{"prompt_tokens": int64(-1000), "completion_tokens": int64(500)}, false, 300},
		{"strings are not counts", mini, program.Usage{"prompt_tokens": "1000", "completion_tokens": int64(500)}, false, 300},
		{"completion from total", mini, program.Usage{"prompt_tokens": int64(1000), "total_tokens": int64(1500)}, false, 450},
		{"empty usage (a cache hit)", mini, program.Usage{}, false, 0},
		// gpt-5-nano input is $0.05: 10 tokens cost 0.5 µ$, which rounds up;
		// 9 cost 0.45, which rounds down.
		{"half rounds up", "openai/gpt-5-nano", program.Usage{"prompt_tokens": int64(10)}, false, 1},
		{"below half rounds down", "openai/gpt-5-nano", program.Usage{"prompt_tokens": int64(9)}, false, 0},
		{"rounded once per call, not per kind", "openai/gpt-5-nano", program.Usage{"prompt_tokens": int64(6), "prompt_tokens_details": details(int64(1)), "completion_tokens": int64(1)}, false, 1},
		// 0.15 and 0.60 of MaxInt64 tokens: 1383505805528216371.05 + 5534023222112865484.2.
		{"MaxInt64 counts stay exact", mini, program.Usage{"prompt_tokens": int64(math.MaxInt64), "completion_tokens": int64(math.MaxInt64)}, false, 6917529027641081855},
		{"bare name", "gpt-4o-mini", program.Usage{"prompt_tokens": int64(1000)}, false, 150},
		{"dated snapshot", "gpt-4o-mini-2024-07-18", program.Usage{"prompt_tokens": int64(1000)}, false, 150},
	}
	table := pricing.Default()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := table.Cost(tt.model, tt.usage, tt.batch)
			if !ok || got != tt.want {
				t.Errorf("Cost = %d, %v; want %d, true", got, ok, tt.want)
			}
			if p := table.CostOf(tt.model, tt.usage, tt.batch); p == nil || *p != tt.want {
				t.Errorf("CostOf = %v; want %d", p, tt.want)
			}
		})
	}
}

func TestCostUnknownModel(t *testing.T) {
	t.Parallel()
	u := program.Usage{"prompt_tokens": int64(1000)}
	table := pricing.Default()
	for _, model := range []string{"hosted_vllm/llama", "azure/gpt-4o-mini", "gpt-4o-min", ""} {
		if got, ok := table.Cost(model, u, false); ok || got != 0 {
			t.Errorf("Cost(%q) = %d, %v; want 0, false", model, got, ok)
		}
		if p := table.CostOf(model, u, true); p != nil {
			t.Errorf("CostOf(%q) = %d; want nil", model, *p)
		}
	}
	if _, ok := (pricing.Table{}).Cost("openai/gpt-4o-mini", u, false); ok {
		t.Error("the zero Table priced a model")
	}
}

// TestCostExactBeyond64Bits: 9e12 tokens at the highest price LM_PRICES
// takes ($1e6 per million, 1e12 µ$) is a 9e24 product, past int64, whose
// cost (9e18 µ$) still fits: the 128-bit intermediate keeps it exact.
func TestCostExactBeyond64Bits(t *testing.T) {
	t.Parallel()
	table, err := pricing.Parse(`{"big": {"input": 1000000, "output": 999999.999999}}`)
	if err != nil {
		t.Fatal(err)
	}
	const tokens = 9_000_000_000_000
	got, ok := table.Cost("big", program.Usage{"prompt_tokens": int64(tokens)}, false)
	if want := int64(tokens) * 1_000_000; !ok || got != want {
		t.Errorf("input cost = %d; want %d", got, want)
	}
	got, _ = table.Cost("big", program.Usage{"completion_tokens": int64(tokens)}, false)
	if want := int64(tokens)*1_000_000 - 9_000_000; got != want {
		t.Errorf("output cost = %d; want %d", got, want)
	}
	// A cost past int64 saturates rather than wrapping negative.
	got, _ = table.Cost("big", program.Usage{"prompt_tokens": int64(math.MaxInt64), "completion_tokens": int64(math.MaxInt64)}, false)
	if got != math.MaxInt64 {
		t.Errorf("cost of MaxInt64 tokens at $1e6/M = %d; want MaxInt64", got)
	}
}

func TestDefaultBatchIsHalfOfLive(t *testing.T) {
	t.Parallel()
	table := pricing.Default()
	for _, model := range table.Models() {
		p, _ := table.Lookup(model)
		for _, pair := range [][2]int64{{p.Input, p.BatchInput}, {p.Output, p.BatchOutput}, {p.CachedInput, p.BatchCachedInput}} {
			if live, batch := pair[0], pair[1]; live <= 0 || batch != (live+1)/2 {
				t.Errorf("%s: live %d, batch %d: want a positive live price and half of it for batch", model, live, batch)
			}
		}
		if p.CachedInput > p.Input {
			t.Errorf("%s: cached input %d above input %d", model, p.CachedInput, p.Input)
		}
	}
	for _, model := range []string{"openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4.1", "openai/gpt-4.1-mini", "openai/gpt-4.1-nano",
		"openai/o3", "openai/o4-mini", "openai/gpt-5", "openai/gpt-5-mini", "openai/gpt-5-nano"} {
		if _, ok := table.Lookup(model); !ok {
			t.Errorf("the default table has no %s", model)
		}
	}
}
