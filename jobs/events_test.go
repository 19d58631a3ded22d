package jobs_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
)

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"0": true, "0-0": true, "1796529197555-0": true, "99999999999999-0": true,
		"18446744073709551615": true, "18446744073709551615-18446744073709551614": true,
		"": false, "-": false, "-1": false, "1-": false, "1-2-3": false, "+1-2": false, "1-+2": false, "a-1": false,
		"1_000-0": false, " 1-0": false,
		"18446744073709551616-0": false, "1-18446744073709551616": false, "99999999999999999999": false,
		"18446744073709551615-18446744073709551615": false, // nothing can follow it
	} {
		if got := jobs.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

var updateGolden = flag.Bool("update", false, "rewrite testdata/events from this run")

// goldenEvents are a sample of every event's data, each rendered from its
// type: testdata/events holds the bytes clients received for them before
// the events became Go types (the record and batch scripts built some).
var goldenEvents = map[string]jobs.EventData{
	"queued":  jobs.QueuedData{Queue: jobs.QueueInteractive},
	"started": jobs.StartedData{Attempt: 2},
	// Characters JSON escapes, and some encoding/json escapes beyond it.
	"token":    jobs.TokenData{Attempt: 1, Field: "answer", Content: "<b>\"Tom & Jerry\"</b>\n\u2028é\x01"},
	"reset":    jobs.RetryingData{Attempt: 1, Reason: "the JSON adapter takes over"},
	"retrying": jobs.RetryingData{Attempt: 3, Reason: "LM returned 503", RetryInMS: 1500},
	"completed": jobs.CompletedData{Result: &jobs.Result{
		// In the order the bytes were captured in, when outputs were a map.
		Outputs:    jobs.Outputs{{Name: "answer", Value: "<42>"}, {Name: "n", Value: 1.5}, {Name: "reasoning", Value: "Because."}},
		Provenance: jobs.Provenance{Model: "openai/gpt-4o-mini", StateSHA256: "ab12", CacheHit: true, Attempts: 2, LMCalls: 3},
		Usage:      json.RawMessage(`{"openai/gpt-4o-mini":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`), LatencySeconds: 0.25,
	}},
	// The cache costs nothing; "completed" is of a model without a price
	// (cost_micro_usd null).
	"completed_cached": jobs.CompletedData{Result: &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}, Usage: json.RawMessage(`{}`), Cost: ptr(int64(0))}},
	// A multi-stage program's: token and reset name their stage, a
	// finished stage says so with its outputs, and the result lists each
	// stage's usage.
	"token_staged":    jobs.TokenData{Attempt: 2, Stage: "verify", Field: "reasoning", Content: "The quote says"},
	"reset_staged":    jobs.RetryingData{Attempt: 1, Stage: "extract.predict", Reason: "the chat answer did not parse; retrying"},
	"stage_completed": jobs.StageCompletedData{Stage: "extract.predict", Outputs: jobs.Outputs{{Name: "reasoning", Value: "Two claims."}, {Name: "claims", Value: []any{"a", "b"}}}},
	"completed_staged": jobs.CompletedData{Result: &jobs.Result{
		Outputs: jobs.Outputs{{Name: "claims", Value: []any{"a"}}, {Name: "supported", Value: true}, {Name: "confidence", Value: 0.75}},
		Provenance: jobs.Provenance{Model: "openai/gpt-4o-mini", StateSHA256: "cd34", Attempts: 2, LMCalls: 3,
			Program: "claims", ProgramVersion: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		Usage: json.RawMessage(`{"openai/gpt-4o-mini":{"prompt_tokens":30,"completion_tokens":12,"total_tokens":42}}`), LatencySeconds: 1.5,
		Stages: []jobs.StageUsage{
			{Stage: "extract.predict", Usage: json.RawMessage(`{"openai/gpt-4o-mini":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`), LMCalls: 1, Cost: ptr(int64(5))},
			{Stage: "verify", Usage: json.RawMessage(`{"openai/gpt-4o-mini":{"prompt_tokens":20,"completion_tokens":7,"total_tokens":27}}`), LMCalls: 2, Cost: ptr(int64(7))},
		},
		Cost: ptr(int64(12)),
	}},
	"failed":        jobs.FailedData{Error: &jobs.Error{Code: "lm_error", Message: "LM returned 400", Status: 400}, Attempts: 1},
	"failed_budget": jobs.FailedData{Error: jobs.BudgetSpent(1000, time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))},
	"expired":       jobs.ExpiredData{Error: &jobs.Error{Code: "expired", Message: "not started within 1m0s"}},
	"cancelled":     jobs.CancelledData{Previous: jobs.StatusRunning},
	"batch_progress": jobs.BatchProgress{Status: jobs.BatchInProgress,
		RequestCounts: jobs.BatchCounts{Total: 50000, Completed: 12, Failed: 3, Cancelled: 0}},
	"batch_cancelled": jobs.BatchProgress{Status: jobs.BatchCancelled, RequestCounts: jobs.BatchCounts{Total: 3, Completed: 1, Cancelled: 2}},
	"batch_provider_progress": jobs.BatchProgress{Status: jobs.BatchInProgress,
		RequestCounts: jobs.BatchCounts{Total: 50000, Completed: 12, Failed: 3, Cancelled: 0}, Provider: &goldenProvider},
}

// goldenProvider is a provider-mode batch's provider object mid-round.
var goldenProvider = jobs.ProviderProgress{Name: "openai", Phase: jobs.ProviderInProgress, Round: 1,
	Batches: []jobs.ProviderBatch{{Chunk: 0, ID: "batch_6789", InputFileID: "file-abc", Status: "in_progress", Requests: 50000}},
	Counts:  jobs.ProviderCounts{Total: 50000, Completed: 15, Failed: 0, Cached: 0}}

// goldenTypes are the event types the samples' data belong to.
var goldenTypes = map[string]jobs.EventType{
	"queued": jobs.EventQueued, "started": jobs.EventStarted, "token": jobs.EventToken, "reset": jobs.EventRetrying,
	"retrying": jobs.EventRetrying, "completed": jobs.EventCompleted, "completed_cached": jobs.EventCompleted,
	"failed": jobs.EventFailed, "failed_budget": jobs.EventFailed, "expired": jobs.EventExpired,
	"cancelled":    jobs.EventCancelled,
	"token_staged": jobs.EventToken, "reset_staged": jobs.EventRetrying, "stage_completed": jobs.EventStageCompleted,
	"completed_staged": jobs.EventCompleted, "batch_progress": jobs.EventProgress, "batch_cancelled": jobs.EventCancelled,
	"batch_provider_progress": jobs.EventProgress,
}

// TestEventDataGolden pins the bytes of each event's data, and the message
// that carries an event on a channel.
func TestEventDataGolden(t *testing.T) {
	t.Parallel()
	for name, data := range goldenEvents {
		if got := data.EventType(); got != goldenTypes[name] {
			t.Errorf("%s: event type %q, want %q", name, got, goldenTypes[name])
		}
		checkGolden(t, name, data)
	}
	checkGolden(t, "envelope", jobs.Event{ID: "1700000000000-0", Type: jobs.EventStarted, Data: json.RawMessage(`{"attempt":1}`)})
}

func checkGolden(t *testing.T, name string, data any) {
	t.Helper()
	got, err := json.Marshal(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	path := filepath.Join("testdata", "events", name+".json")
	if *updateGolden {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got)+"\n" != string(want) {
		t.Errorf("%s:\n got %s\nwant %s", name, got, want)
	}
}

// TestTemplates: each template is its type's JSON with a placeholder per
// value, and renders the golden bytes.
func TestTemplates(t *testing.T) {
	t.Parallel()
	result, err := json.Marshal(goldenEvents["completed"].(jobs.CompletedData).Result)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		text   string
		values jobs.Values
		golden string
	}{
		"started":   {"{\"attempt\":\x01attempt\x01}", jobs.Values{"attempt": 2}, "started"},
		"cancelled": {"{\"previous\":\x02previous\x02}", jobs.Values{"previous": "running"}, "cancelled"},
		"lost": {"{\"attempt\":\x01attempt\x01,\"reason\":\x03reason\x03,\"retry_in_ms\":0}",
			jobs.Values{"attempt": 2, "reason": json.RawMessage(`"worker w-1 lost (no liveness renewal within 3s)"`)}, "retrying_lost"},
		"completed": {"{\"result\":\x03result\x03}", jobs.Values{"result": json.RawMessage(result)}, "completed"},
		"batch_progress": {"{\"status\":\x02status\x02,\"request_counts\":{\"total\":\x01total\x01,\"completed\":\x01completed\x01," +
			"\"failed\":\x01failed\x01,\"cancelled\":\x01cancelled\x01}}",
			jobs.Values{"status": "in_progress", "total": 50000, "completed": 12, "failed": 3, "cancelled": 0}, "batch_progress"},
		"batch_provider_progress": {"{\"status\":\x02status\x02,\"request_counts\":{\"total\":\x01total\x01,\"completed\":\x01completed\x01," +
			"\"failed\":\x01failed\x01,\"cancelled\":\x01cancelled\x01},\"provider\":\x03provider\x03}",
			jobs.Values{"status": "in_progress", "total": 50000, "completed": 12, "failed": 3, "cancelled": 0,
				"provider": json.RawMessage(mustMarshal(t, goldenProvider))}, "batch_provider_progress"},
		"envelope": {"{\"id\":\x02id\x02,\"type\":\x02type\x02,\"data\":\x03data\x03}",
			jobs.Values{"id": "1700000000000-0", "type": "started", "data": json.RawMessage(`{"attempt":1}`)}, "envelope"},
		"ended_envelope": {"{\"id\":\x02id\x02,\"type\":\x02type\x02,\"data\":\x03data\x03,\"ended\":{\"attempts\":\x01attempts\x01," +
			"\"started_at\":\x01started_at\x01,\"finished_at\":\x01finished_at\x01}}",
			jobs.Values{"id": "1700000000000-0", "type": "completed", "data": json.RawMessage(`{"result":{}}`),
				"attempts": 2, "started_at": 1700000000000, "finished_at": 1700000000123}, "ended_envelope"},
	}
	if len(jobs.Templates()) != len(want) {
		t.Errorf("%d templates, want %d", len(jobs.Templates()), len(want))
	}
	for _, tpl := range jobs.Templates() {
		w, ok := want[tpl.Name]
		if !ok {
			t.Errorf("unexpected template %s", tpl.Name)
			continue
		}
		if tpl.Text != w.text {
			t.Errorf("%s: text %q, want %q", tpl.Name, tpl.Text, w.text)
		}
		got, err := tpl.Render(w.values)
		if err != nil {
			t.Fatal(err)
		}
		golden, err := os.ReadFile(filepath.Join("testdata", "events", w.golden+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got)+"\n" != string(golden) {
			t.Errorf("%s: renders %s, want %s", tpl.Name, got, golden)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }
