package program

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAttemptsAllocs: the fallback's response formats depend on the
// signature alone, so a run does not rebuild the structured-outputs schema
// (582 allocations for this signature) every time; the formats it
// gets are the ones built the first time.
func TestAttemptsAllocs(t *testing.T) {
	sig := fuzzModelSig(t)
	first := attempts(sig, nil)
	if got := len(first); got != 3 {
		t.Fatalf("attempts = %d, want chat, structured outputs, JSON mode", got)
	}
	want := *structuredOutputFormat(sig)
	if diff := cmp.Diff(want, *first[1].rf); diff != "" {
		t.Errorf("structured-outputs format (-built +kept):\n%s", diff)
	}
	allocs := testing.AllocsPerRun(20, func() { _ = attempts(sig, nil) })
	if allocs > 1 {
		t.Errorf("attempts: %.0f allocations per run, want at most 1", allocs)
	}
}
