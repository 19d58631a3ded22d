package store

import (
	"testing"

	"github.com/qaqueue/qaqueue/jobs"
)

// TestQueuedData: a submit's queued event data is what encoding/json renders
// for its queue, and for the queues jobs are submitted to it is rendered once
// per process, not per submit (3 allocations before).
func TestQueuedData(t *testing.T) {
	for _, q := range []string{jobs.QueueInteractive, jobs.QueueBatch, "other", `q"<&>`} {
		if got, want := queuedData(q), mustJSON(jobs.QueuedData{Queue: q}); got != want {
			t.Errorf("queuedData(%q) = %s, want %s", q, got, want)
		}
	}
	if raceEnabled {
		return
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = queuedData(jobs.QueueInteractive) }); allocs != 0 {
		t.Errorf("queuedData(interactive): %.0f allocations, want none", allocs)
	}
}
