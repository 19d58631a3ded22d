package program

import "testing"

// TestFieldStreamWriteAllocs: a delta inside a streamed field costs the
// string it is emitted as, not a copy of itself too (2 allocations before).
func TestFieldStreamWriteAllocs(t *testing.T) {
	var got []byte
	s := newChatFieldStream("answer", func(c string) { got = append(got[:0], c...) })
	s.write("[[ ## answer ## ]]\nThe capital ")
	allocs := testing.AllocsPerRun(100, func() { s.write("of France is Paris, ") })
	if string(got) != " of France is Paris," { // the held space, then the delta without its own
		t.Fatalf("emitted %q", got)
	}
	if allocs > 1 {
		t.Errorf("write: %.0f allocations per delta, want at most 1", allocs)
	}
}
