package store

import (
	"testing"

	"github.com/qaqueue/qaqueue/jobs"
)

// completedRecord is a completed QA job's record as HGETALL returns it.
var completedRecord = map[string]string{
	"id": "0123456789abcdef0123456789abcdef", "status": string(jobs.StatusCompleted),
	"spec":     `{"program":"qa","inputs":{"question":"What is the capital of France?"},"owner":"alice","queue":"interactive"}`,
	"attempts": "1", "created_at": "1700000000000", "started_at": "1700000000001", "finished_at": "1700000000002",
	"result": `{"outputs":{"reasoning":"France's capital is Paris.","answer":"Paris"},"provenance":{"model":"openai/gpt-4o-mini","attempts":1,"lm_calls":1},"usage":{},"latency_seconds":0.001}`,
}

// TestDecodeJobAllocs bounds the allocations of reading a completed job's
// record, which every wait and GET does: 41 through encoding/json's
// decoder and reflection, 30 with the spec read in one pass
// (jobs.ParseSpec), 24 with the result too (jobs.ParseResult).
func TestDecodeJobAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	allocs := testing.AllocsPerRun(100, func() {
		if j, err := decodeJob(completedRecord); err != nil || j.Result == nil {
			t.Fatalf("decodeJob: %v, %+v", err, j)
		}
	})
	t.Logf("%.0f allocations", allocs)
	if allocs > 24 {
		t.Errorf("decodeJob: %.0f allocations, want at most 24", allocs)
	}
}

// TestEndedByAllocs bounds the allocations of ending a wait from the
// completed event's message: 23 with its result read through reflection,
// 14 in one pass (jobs.ParseCompleted).
func TestEndedByAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	running := &jobs.Job{ID: completedRecord["id"], Status: jobs.StatusRunning, Spec: jobs.Spec{ClientSpec: jobs.QuestionSpec("What is the capital of France?")}}
	ev := jobs.Event{Type: jobs.EventCompleted, Data: []byte(`{"result":` + completedRecord["result"] + `}`),
		Ended: &jobs.Ended{Attempts: 1, StartedAt: 1_700_000_000_001, FinishedAt: 1_700_000_000_002}}
	allocs := testing.AllocsPerRun(100, func() {
		if j, ok := (jobSource{}).EndedBy(running, ev); !ok || j.Result.Answer("answer") != "Paris" {
			t.Fatalf("EndedBy: %v, %+v", ok, j)
		}
	})
	t.Logf("%.0f allocations", allocs)
	if allocs > 14 {
		t.Errorf("EndedBy: %.0f allocations, want at most 14", allocs)
	}
}
