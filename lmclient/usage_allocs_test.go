package lmclient

import "testing"

// TestParseUsageAllocs: a usage block is decoded into maps once, not
// decoded and then copied map by map (50 allocations for this one before, 43 after).
func TestParseUsageAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	raw := `{"prompt_tokens":112,"completion_tokens":35,"total_tokens":147,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`
	allocs := testing.AllocsPerRun(100, func() {
		if u, err := parseUsage(raw); err != nil || u["total_tokens"] != int64(147) {
			t.Fatalf("parseUsage: %v %v", u, err)
		}
	})
	if allocs > 45 {
		t.Errorf("parseUsage: %.0f allocations, want at most %d", allocs, 45)
	}
}
