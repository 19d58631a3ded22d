package pricing_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/pricing"
	"github.com/qaqueue/qaqueue/program"
)

func TestParseMergesOverDefaults(t *testing.T) {
	t.Parallel()
	table, err := pricing.Parse(`{
		"openai/gpt-4o-mini": {"input": 0.2, "output": 0.8},
		"local/llama": {"input": 0.1, "output": 0.3, "cached_input": 0.05},
		"full/model": {"input": 3, "output": 15, "cached_input": 0.3, "batch_input": 2, "batch_output": 10, "batch_cached_input": 0.25},
		"odd/micros": {"input": 0.000001, "output": 0.0000015}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]pricing.Price{
		// A model given replaces its whole default entry: its cached price
		// is now the input price, not the default's 0.075.
		"openai/gpt-4o-mini": {Input: 200_000, Output: 800_000, CachedInput: 200_000, BatchInput: 100_000, BatchOutput: 400_000, BatchCachedInput: 100_000},
		// A cached price given: the batch cached price is half of it.
		"local/llama": {Input: 100_000, Output: 300_000, CachedInput: 50_000, BatchInput: 50_000, BatchOutput: 150_000, BatchCachedInput: 25_000},
		"full/model":  {Input: 3_000_000, Output: 15_000_000, CachedInput: 300_000, BatchInput: 2_000_000, BatchOutput: 10_000_000, BatchCachedInput: 250_000},
		// 1.5 µ$ rounds to 2; half of 1 µ$ rounds up to 1.
		"odd/micros": {Input: 1, Output: 2, CachedInput: 1, BatchInput: 1, BatchOutput: 1, BatchCachedInput: 1},
		// Untouched defaults stay.
		"openai/gpt-4o": must(pricing.Default().Lookup("openai/gpt-4o")),
	}
	for model, w := range want {
		got, ok := table.Lookup(model)
		if !ok {
			t.Errorf("no price for %s", model)
			continue
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", model, diff)
		}
	}
}

func must(p pricing.Price, ok bool) pricing.Price {
	if !ok {
		panic("no default price")
	}
	return p
}

func TestParseEmptyIsDefault(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "  ", "{}"} {
		table, err := pricing.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if diff := cmp.Diff(pricing.Default().Models(), table.Models()); diff != "" {
			t.Errorf("Parse(%q) models (-default +got):\n%s", s, diff)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []pricing.Error // Problem is matched as a prefix
	}{
		{"negative", `{"m/x": {"input": -1, "output": 1}}`, []pricing.Error{{Model: "m/x", Field: "input", Problem: "must not be negative, got -1"}}},
		{"negative beyond float64", `{"m/x": {"input": -1e400, "output": 1}}`, []pricing.Error{{Model: "m/x", Field: "input", Problem: "must not be negative, got -1e400"}}},
		{"not a number", `{"m/x": {"input": "0.15", "output": 1}}`, []pricing.Error{{Model: "m/x", Field: "input", Problem: `must be a number of USD per million tokens, got "0.15"`}}},
		{"object price", `{"m/x": {"input": {"usd": 1, "per": "1M tokens", "note": "a long object"}, "output": 1}}`, []pricing.Error{{Model: "m/x", Field: "input", Problem: "must be a number of USD per million tokens, got an object"}}},
		{"null price", `{"m/x": {"input": 1, "output": null}}`, []pricing.Error{{Model: "m/x", Field: "output", Problem: "must be a number of USD per million tokens, got null"}}},
		{"too large", `{"m/x": {"input": 1e400, "output": 2e6}}`, []pricing.Error{
			{Model: "m/x", Field: "input", Problem: "must be at most 1000000 USD per million tokens, got 1e400"},
			{Model: "m/x", Field: "output", Problem: "must be at most 1000000 USD per million tokens, got 2e6"},
		}},
		{"unknown field", `{"m/x": {"input": 1, "output": 1, "cache_read": 0.1}}`, []pricing.Error{{Model: "m/x", Field: "cache_read", Problem: "is unknown; the fields are input, output, cached_input, batch_input, batch_output, batch_cached_input"}}},
		{"missing input and output", `{"m/x": {"cached_input": 1}}`, []pricing.Error{
			{Model: "m/x", Field: "input", Problem: "is required"},
			{Model: "m/x", Field: "output", Problem: "is required"},
		}},
		{"entry not an object", `{"m/x": 1.5}`, []pricing.Error{{Model: "m/x", Problem: "must be an object"}}},
		{"null entry", `{"m/x": null}`, []pricing.Error{{Model: "m/x", Problem: "must be an object"}}},
		{"empty model", `{"": {"input": 1, "output": 1}}`, []pricing.Error{{Model: "", Problem: "is not a model name"}}},
		{"empty provider", `{"/x": {"input": 1, "output": 1}}`, []pricing.Error{{Model: "/x", Problem: "is not a model name"}}},
		{"model given twice", `{"a/x": {"input": 1, "output": 1}, "a/x": {"input": 2, "output": 2}}`, []pricing.Error{{Model: "a/x", Problem: "is given more than once"}}},
		{"field given twice", `{"a/x": {"input": 1, "output": 1, "input": 2}}`, []pricing.Error{{Model: "a/x", Field: "input", Problem: "is given more than once"}}},
		{"every model's problems", `{"b/y": {"input": -2, "output": 1}, "a/x": {"input": 1}}`, []pricing.Error{
			{Model: "a/x", Field: "output", Problem: "is required"},
			{Model: "b/y", Field: "input", Problem: "must not be negative, got -2"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := pricing.Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%s) succeeded", tt.in)
			}
			multi, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("error %v does not join its problems", err)
			}
			errs := multi.Unwrap()
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, e := range errs {
				var pe *pricing.Error
				if !errors.As(e, &pe) {
					t.Fatalf("problem %d (%v) is not a *pricing.Error", i, e)
				}
				w := tt.want[i]
				if pe.Model != w.Model || pe.Field != w.Field || !strings.HasPrefix(pe.Problem, w.Problem) {
					t.Errorf("problem %d = %+v; want %+v", i, *pe, w)
				}
				if (w.Field != "" && !strings.Contains(e.Error(), `field "`+w.Field+`"`)) || !strings.Contains(e.Error(), `model "`+w.Model+`"`) {
					t.Errorf("problem %d's message %q does not name its model and field", i, e.Error())
				}
			}
		})
	}
}

func TestParseRejectsNonObjects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"null", "[]", `"x"`, "{", `{"m/x": {"input": 1, "output": 1}} trailing`} {
		_, err := pricing.Parse(in)
		if err == nil || !strings.Contains(err.Error(), "must be a JSON object") {
			t.Errorf("Parse(%s) = %v; want a JSON object error", in, err)
		}
	}
}

// TestStringRoundTrips: String gives the LM_PRICES value of a table, only
// what differs from the defaults, which parses back to the same table.
func TestStringRoundTrips(t *testing.T) {
	t.Parallel()
	if s := pricing.Default().String(); s != "" {
		t.Errorf("Default().String() = %q; want empty", s)
	}
	in := `{"openai/gpt-4o-mini": {"input": 0.2, "output": 0.8}, "local/llama": {"input": 0.123456, "output": 1234.5, "batch_cached_input": 0}}`
	table, err := pricing.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	s := table.String()
	want := `{"local/llama":{"input":0.123456,"output":1234.5,"cached_input":0.123456,"batch_input":0.061728,"batch_output":617.25,"batch_cached_input":0},` +
		`"openai/gpt-4o-mini":{"input":0.2,"output":0.8,"cached_input":0.2,"batch_input":0.1,"batch_output":0.4,"batch_cached_input":0.1}}`
	if s != want {
		t.Errorf("String() =\n%s\nwant\n%s", s, want)
	}
	assertSameTable(t, table, s)
}

func TestMarshalJSONWritesTheWholeTable(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(pricing.Default())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]map[string]float64
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pricing.Default().Models()) {
		t.Errorf("MarshalJSON has %d models; want %d", len(got), len(pricing.Default().Models()))
	}
	if p := got["openai/gpt-4o-mini"]; p["input"] != 0.15 || p["cached_input"] != 0.075 || p["batch_output"] != 0.3 {
		t.Errorf("gpt-4o-mini = %v", p)
	}
}

// assertSameTable checks that the LM_PRICES value s parses to table.
func assertSameTable(t *testing.T, table pricing.Table, s string) {
	t.Helper()
	back, err := pricing.Parse(s)
	if err != nil {
		t.Fatalf("Parse(String()) of %s: %v", s, err)
	}
	if diff := cmp.Diff(table.Models(), back.Models()); diff != "" {
		t.Fatalf("models after a round trip (-before +after):\n%s", diff)
	}
	for _, m := range table.Models() {
		a, _ := table.Lookup(m)
		b, _ := back.Lookup(m)
		if a != b {
			t.Fatalf("%s: %+v after a round trip; was %+v", m, b, a)
		}
	}
}

// FuzzParse: any input either fails with problems naming their model, or
// gives a table of prices within [0, MaxUSD] whose String parses back to
// it, and which prices any usage without panicking.
func FuzzParse(f *testing.F) {
	f.Add(`{"openai/gpt-4o-mini": {"input": 0.15, "output": 0.6}}`)
	f.Add(`{"m/x": {"input": 1e-7, "output": 999999.9999995, "cached_input": 0, "batch_input": 0.5, "batch_output": 1, "batch_cached_input": 0.25}}`)
	f.Add(`{"x": {"input": -1, "output": "a", "extra": true}, "": {}}`)
	f.Add(`{"gpt-4o-mini": {"input": 1, "output": 1}, "azure/gpt-4o-mini": {"input": 1, "output": 1}}`)
	f.Add(`[1, 2]`)
	f.Fuzz(func(t *testing.T, s string) {
		table, err := pricing.Parse(s)
		if err != nil {
			return
		}
		const maxMicros = pricing.MaxUSD * 1_000_000
		for _, m := range table.Models() {
			p, ok := table.Lookup(m)
			if !ok {
				t.Fatalf("Lookup(%q) of a listed model failed", m)
			}
			for _, v := range []int64{p.Input, p.Output, p.CachedInput, p.BatchInput, p.BatchOutput, p.BatchCachedInput} {
				if v < 0 || v > maxMicros {
					t.Fatalf("%s: price %d out of range in %+v", m, v, p)
				}
			}
			u := program.Usage{"prompt_tokens": int64(1 << 62), "completion_tokens": int64(1 << 62),
				"prompt_tokens_details": program.Usage{"cached_tokens": int64(1 << 61)}}
			if c := p.Cost(u, true); c < 0 {
				t.Fatalf("%s: negative cost %d", m, c)
			}
		}
		assertSameTable(t, table, table.String())
	})
}
