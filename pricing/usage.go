package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
)

// ParseUsage reads a run's usage as results hold it (DSPy's {model: usage
// block}, jobs.Result.Usage), token counts kept as integers; empty or null
// is no usage.
func ParseUsage(raw json.RawMessage) (map[string]program.Usage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var byModel map[string]program.Usage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&byModel); err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	return byModel, nil
}

// Tokens counts byModel's tokens by kind, over its models, as [Price.Cost]
// reads each block (cached tokens are part of the input, and at most it).
func Tokens(byModel map[string]program.Usage) jobs.TokenCount {
	var c jobs.TokenCount
	for _, u := range byModel {
		tk := readTokens(u)
		c.Input = addSat(c.Input, tk.prompt)
		c.CachedInput = addSat(c.CachedInput, tk.cached)
		c.Output = addSat(c.Output, tk.completion)
	}
	return c
}

// CostOfModels is [Table.CostOf] over byModel, each block priced at its
// model's price: nil when a model has none, 0 for no usage (the LM cache
// answered).
func (t Table) CostOfModels(byModel map[string]program.Usage, batch bool) *int64 {
	var sum int64
	for model, u := range byModel {
		micros, ok := t.Cost(model, u, batch)
		if !ok {
			return nil
		}
		sum = addSat(sum, micros)
	}
	return &sum
}

// Add is a + b, either of them nil (unknown) making it nil; saturated at
// the largest int64, as a single cost is.
func Add(a, b *int64) *int64 {
	if a == nil || b == nil {
		return nil
	}
	s := addSat(*a, *b)
	return &s
}

// addSat adds two non-negative amounts, saturating.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
