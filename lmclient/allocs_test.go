package lmclient

import (
	"testing"
)

// TestCompleteAllocs bounds the allocations of one uncached, non-streamed
// Complete against the in-process fake LM, both ends counted. The request
// is encoded once and the answer decoded once, without openai-go's
// reflection over its params and response types (496 before, 349 after, the fake LM's own included).
func TestCompleteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	allocs := completeAllocs(t, "How many allocations does one call take?")
	t.Logf("%.0f allocations per Complete", allocs)
	if allocs > 420 {
		t.Errorf("%.0f allocations per Complete, want at most %d", allocs, 420)
	}
}

// TestCompleteAcceptAllocs bounds an uncached call whose answer is then
// accepted into the memory layer: the cache key is computed once, by
// Complete, and the metrics children each call touches are looked up once
// (495 before, 421 after, the fake LM's included).
func TestCompleteAcceptAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	b := setup(t, func(c *Config, _ *Deps) { c.MemoryEnabled = true })
	ctx := ctxT(t)
	req := chatRequest("How many allocations do a call and its accept take?")
	req.SkipCacheRead = true
	var err error
	run := func() {
		comp, e := b.c.Complete(ctx, req)
		if e == nil {
			e = b.c.Accept(ctx, req, comp)
		}
		if e != nil {
			err = e
		}
	}
	run() // warm the connection
	allocs := testing.AllocsPerRun(50, run)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.0f allocations per Complete and Accept", allocs)
	if allocs > 460 {
		t.Errorf("%.0f allocations per Complete and Accept, want at most %d", allocs, 460)
	}
}

// completeAllocs is the allocations of one uncached Complete of question,
// on a client set up with mod, its connection warmed first.
func completeAllocs(t *testing.T, question string, mod ...func(*Config, *Deps)) float64 {
	t.Helper()
	b := setup(t, mod...)
	ctx := ctxT(t)
	req := chatRequest(question)
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
	return allocs
}
