package lmclient

import (
	"testing"
)

// TestCompleteAllocs bounds the allocations of one uncached, non-streamed
// Complete against the in-process fake LM, both ends counted. The request
// is encoded once and the answer decoded once, without openai-go's
// reflection over its params and response types (496 before, 349 after, the fake LM's own included).
func TestCompleteAllocs(t *testing.T) {
	b := setup(t)
	ctx := ctxT(t)
	req := chatRequest("How many allocations does one call take?")
	req.NoCache = true
	if _, err := b.c.Complete(ctx, req); err != nil { // warm the connection
		t.Fatal(err)
	}
	var err error
	allocs := testing.AllocsPerRun(50, func() {
		if _, e := b.c.Complete(ctx, req); e != nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.0f allocations per Complete", allocs)
	if allocs > 420 {
		t.Errorf("%.0f allocations per Complete, want at most %d", allocs, 420)
	}
}
