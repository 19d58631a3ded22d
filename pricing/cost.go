package pricing

import (
	"encoding/json"
	"math"
	"math/bits"
	"strconv"

	"github.com/qaqueue/qaqueue/program"
)

// Cost returns what usage u of model cost, in micro-dollars, at the batch
// prices if batch is set, else at the live ones; ok is false when the
// table has no price for model (see [Table.Lookup]).
func (t Table) Cost(model string, u program.Usage, batch bool) (micros int64, ok bool) {
	p, ok := t.Lookup(model)
	if !ok {
		return 0, false
	}
	return p.Cost(u, batch), true
}

// CostOf is [Table.Cost] as a nullable amount, the shape a cost report
// stores (jobs.BatchCost): nil for an unknown model.
func (t Table) CostOf(model string, u program.Usage, batch bool) *int64 {
	micros, ok := t.Cost(model, u, batch)
	if !ok {
		return nil
	}
	return &micros
}

// Cost returns what usage u cost at p, in micro-dollars: uncached prompt
// tokens at the input price, cached ones (prompt_tokens_details.
// cached_tokens, at most prompt_tokens) at the cached price, completion
// tokens (reasoning included, as OpenAI bills them) at the output price.
// Without completion_tokens, total_tokens − prompt_tokens stands for it.
// Missing, negative or unreadable counts are 0. The sum is rounded once,
// half up, to whole micro-dollars.
func (p Price) Cost(u program.Usage, batch bool) int64 {
	in, cached, out := p.Input, p.CachedInput, p.Output
	if batch {
		in, cached, out = p.BatchInput, p.BatchCachedInput, p.BatchOutput
	}
	tk := readTokens(u)
	var sum uint128
	sum.addProduct(tk.prompt-tk.cached, in)
	sum.addProduct(tk.cached, cached)
	sum.addProduct(tk.completion, out)
	return sum.perMillionRounded()
}

// tokens is what a usage block bills.
type tokens struct {
	prompt, cached, completion int64
}

func readTokens(u program.Usage) tokens {
	var tk tokens
	tk.prompt, _ = count(u["prompt_tokens"])
	if details, ok := asMap(u["prompt_tokens_details"]); ok {
		tk.cached, _ = count(details("cached_tokens"))
	}
	tk.cached = min(tk.cached, tk.prompt)
	var ok bool
	if tk.completion, ok = count(u["completion_tokens"]); !ok {
		if total, ok := count(u["total_tokens"]); ok {
			tk.completion = max(total-tk.prompt, 0)
		}
	}
	return tk
}

// count reads a token count as usage blocks hold it (int64 from lmclient,
// float64 or json.Number from elsewhere), clamped to [0, MaxInt64] and
// rounded; ok is false when v is missing or not a number.
func count(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return max(n, 0), true
	case int:
		return max(int64(n), 0), true
	case int32:
		return max(int64(n), 0), true
	case float64:
		return countFloat(n)
	case float32:
		return countFloat(float64(n))
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return max(i, 0), true
		}
		f, err := n.Float64()
		if err != nil && !math.IsInf(f, 0) { // not a number at all
			return 0, false
		}
		return countFloat(f) // an out-of-range literal is ±Inf, which clamps
	case program.BigInt: // beyond int64: only a huge positive count is a count
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return max(i, 0), true
		}
		if len(n) > 0 && n[0] != '-' {
			return math.MaxInt64, true
		}
		return 0, true
	}
	return 0, false
}

func countFloat(f float64) (int64, bool) {
	switch {
	case math.IsNaN(f):
		return 0, false
	case f <= 0:
		return 0, true
	case f >= math.MaxInt64: // float64(MaxInt64) is 2^63, already out of range
		return math.MaxInt64, true
	}
	return int64(math.Round(f)), true
}

// asMap returns a getter over a nested usage object, in any of the shapes
// usage maps come in.
func asMap(v any) (func(string) any, bool) {
	switch m := v.(type) {
	case program.Usage:
		return func(k string) any { return m[k] }, true
	case map[string]any:
		return func(k string) any { return m[k] }, true
	case *program.Map:
		if m == nil {
			return nil, false
		}
		return func(k string) any { v, _ := m.Get(k); return v }, true
	}
	return nil, false
}

// uint128 accumulates token × price products, which overflow 64 bits for
// realistic inputs (2^63 is 9.2e18: 1e7 tokens at $1e6/M is 1e19).
type uint128 struct{ hi, lo uint64 }

// addProduct adds a × b; both are non-negative (tokens are clamped, prices
// validated), so three products stay below 2^128.
func (x *uint128) addProduct(a, b int64) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	var carry uint64
	x.lo, carry = bits.Add64(x.lo, lo, 0)
	x.hi, _ = bits.Add64(x.hi, hi, carry)
}

// perMillionRounded returns x / 1e6 rounded half up, saturated at MaxInt64.
func (x uint128) perMillionRounded() int64 {
	const million = 1_000_000
	lo, carry := bits.Add64(x.lo, million/2, 0)
	hi, overflow := bits.Add64(x.hi, 0, carry)
	if overflow != 0 || hi >= million { // the quotient would not fit 64 bits
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, million)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}
