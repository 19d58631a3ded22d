package program

import "testing"

func TestTotalTokens(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		usage map[string]Usage
		want  int64
	}{
		{nil, 0}, // every call from the cache
		{map[string]Usage{"openai/gpt-4o-mini": {"prompt_tokens": int64(250), "completion_tokens": int64(77), "total_tokens": int64(327)}}, 327},
		{map[string]Usage{"a": {"total_tokens": int64(10)}, "b": {"total_tokens": int64(5)}}, 15},
		{map[string]Usage{"a": {"total_tokens": nil}, "b": {"total_tokens": "12"}, "c": {"total_tokens": int64(-3)}}, 0},
	} {
		if got := (&Result{Usage: c.usage}).TotalTokens(); got != c.want {
			t.Errorf("TotalTokens(%v) = %d, want %d", c.usage, got, c.want)
		}
	}
}
