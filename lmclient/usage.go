package lmclient

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/qaqueue/qaqueue/program"
)

// parseUsage turns a provider's raw usage JSON into DSPy's shape, keeping
// every key (DSPy passes them all through): integers become int64, other
// numbers float64, objects nested program.Usage maps. Empty or null usage
// gives nil, which DSPy does not add.
func parseUsage(raw string) (program.Usage, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || raw == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode usage: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return toUsage(m), nil
}

// toUsage converts m's values in place (json.Number to int64 or float64,
// objects to Usage), so a usage block is decoded into maps once.
func toUsage(m map[string]any) program.Usage {
	for k, v := range m {
		m[k] = usageValue(v)
	}
	return program.Usage(m)
}

func usageValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		return toUsage(x)
	case []any:
		for i, e := range x {
			x[i] = usageValue(e)
		}
		return x
	}
	return v
}

// MergeUsage adds b into a as DSPy merges usage across the calls of one run:
// numbers add, nil + x is x, nested maps merge key by key, new keys are kept.
// a may be nil; the result is returned.
func MergeUsage(a, b program.Usage) program.Usage {
	if a == nil {
		a = program.Usage{}
	}
	for k, bv := range b {
		a[k] = mergeValue(a[k], bv)
	}
	return a
}

func mergeValue(a, b any) any {
	if a == nil {
		if bm, ok := b.(program.Usage); ok {
			return MergeUsage(nil, bm)
		}
		return b
	}
	if b == nil {
		return a
	}
	switch x := a.(type) {
	case int64:
		switch y := b.(type) {
		case int64:
			return x + y
		case float64:
			return float64(x) + y
		}
	case float64:
		switch y := b.(type) {
		case int64:
			return x + float64(y)
		case float64:
			return x + y
		}
	case program.Usage:
		if y, ok := b.(program.Usage); ok {
			return MergeUsage(x, y)
		}
	}
	return b // DSPy's merge keeps the newer value for anything else
}

// usageTokens reads prompt and completion tokens for metrics and the limiter.
func usageTokens(u program.Usage) (prompt, completion int64) {
	p, _ := u["prompt_tokens"].(int64)
	c, _ := u["completion_tokens"].(int64)
	return p, c
}
