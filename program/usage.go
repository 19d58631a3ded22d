package program

import (
	"encoding/json"
)

// addUsage merges one call's usage into the run's totals for model, the way
// DSPy's usage tracker does: numbers add, None + x = x, nested maps merge
// key by key, new keys are kept. Empty usage (a cache hit) adds nothing, so
// a fully cached run ends with an empty map rather than zeros.
func addUsage(totals map[string]Usage, model string, u Usage) {
	if len(u) == 0 {
		return
	}
	totals[model] = mergeUsage(totals[model], u)
}

// TotalTokens sums total_tokens over the models of the run's usage: what
// the run cost, as a token budget counts it. A cached run used none.
func (r *Result) TotalTokens() int64 {
	var n int64
	for _, u := range r.Usage {
		if t, ok := usageInt(u["total_tokens"]); ok && t > 0 {
			n += t
		}
	}
	return n
}

// mergeUsage returns a + b without modifying either.
func mergeUsage(a, b map[string]any) Usage {
	out := Usage{}
	for k, v := range a {
		out[k] = copyUsageValue(v)
	}
	for k, v := range b {
		cur, ok := out[k]
		if !ok {
			out[k] = copyUsageValue(v)
			continue
		}
		out[k] = mergeUsageValue(cur, v)
	}
	return out
}

func mergeUsageValue(a, b any) any {
	switch {
	case a == nil:
		return copyUsageValue(b)
	case b == nil:
		return a
	}
	am, aIsMap := usageMap(a)
	bm, bIsMap := usageMap(b)
	if aIsMap || bIsMap {
		return mergeUsage(am, bm)
	}
	ai, aInt := usageInt(a)
	bi, bInt := usageInt(b)
	if aInt && bInt {
		return ai + bi
	}
	af, aNum := usageFloat(a)
	bf, bNum := usageFloat(b)
	if aNum && bNum {
		return af + bf
	}
	// Not numbers (a provider's string, say): the newest value wins.
	return copyUsageValue(b)
}

func usageMap(v any) (map[string]any, bool) {
	switch t := v.(type) {
	case Usage:
		return t, true
	case map[string]any:
		return t, true
	case *Map:
		m := map[string]any{}
		for _, k := range t.keys {
			m[k] = t.values[k]
		}
		return m, true
	}
	return nil, false
}

func usageInt(v any) (int64, bool) {
	switch t := v.(type) {
	case int:
		return int64(t), true
	case int32:
		return int64(t), true
	case int64:
		return t, true
	case json.Number:
		i, err := t.Int64()
		return i, err == nil
	}
	return 0, false
}

func usageFloat(v any) (float64, bool) {
	if i, ok := usageInt(v); ok {
		return float64(i), true
	}
	switch t := v.(type) {
	case float64:
		return t, true
	case float32:
		return float64(t), true
	case json.Number:
		f, err := t.Float64()
		return f, err == nil
	}
	return 0, false
}

func copyUsageValue(v any) any {
	if m, ok := usageMap(v); ok {
		return mergeUsage(nil, m)
	}
	if i, ok := usageInt(v); ok {
		return i
	}
	return v
}
