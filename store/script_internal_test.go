package store

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
)

// fillScript runs events.lua's fill on a template named by ARGV[1] with the
// values in ARGV[2] (JSON: numbers for integers, strings for strings and
// for JSON).
const fillScript = "return fill(T[ARGV[1]], cjson.decode(ARGV[2]))"

// TestFillIsTheGoRendering: for every template and a spread of values, the
// script's fill writes exactly the bytes Go renders for the event's type.
func TestFillIsTheGoRendering(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	script := NewScript(fillScript)
	cases := map[string][]jobs.Values{
		"started":   {{"attempt": 1}, {"attempt": 12}, {"attempt": 1234567}},
		"cancelled": {{"previous": "queued"}, {"previous": "running"}, {"previous": "retrying"}},
		"lost":      {{"attempt": 1, "reason": json.RawMessage(`"worker h-1-ab lost"`)}, {"attempt": 3, "reason": json.RawMessage(`"\u003cé\"\\"`)}},
		"completed": {
			{"result": json.RawMessage(`{"outputs":{"reasoning":"\u003cb\u003e \u2028é\u0001\"\\","answer":"a"},"provenance":{"model":"m","program_state_sha256":"","cache_hit":false,"attempts":1,"lm_calls":1},"usage":{},"latency_seconds":0.5}`)},
			{"result": json.RawMessage(`{"outputs":{},"provenance":{"model":"","program_state_sha256":"","cache_hit":true,"attempts":3,"lm_calls":0},"usage":null,"latency_seconds":0}`)},
		},
		"batch_progress": {
			{"status": "in_progress", "total": 0, "completed": 0, "failed": 0, "cancelled": 0},
			{"status": "cancelling", "total": 50000, "completed": 49000, "failed": 999, "cancelled": 1},
			{"status": "completed", "total": 3, "completed": 2, "failed": 1, "cancelled": 0},
		},
		"batch_provider_progress": {
			{"status": "in_progress", "total": 3, "completed": 0, "failed": 0, "cancelled": 0,
				"provider": json.RawMessage(`{"name":"openai","phase":"uploading","round":1,"request_counts":{"total":0,"completed":0,"failed":0,"cached":0}}`)},
			{"status": "cancelling", "total": 50000, "completed": 1, "failed": 2, "cancelled": 3,
				"provider": json.RawMessage(`{"name":"openai","phase":"in_progress","round":2,"stage":"verify","batches":[{"chunk":0,"id":"batch_x","requests":2}],"request_counts":{"total":2,"completed":1,"failed":0,"cached":0},"error":{"code":"e","message":"\u003cé\""}}`)},
		},
		"envelope": {
			{"id": "1700000000000-0", "type": "started", "data": json.RawMessage(`{"attempt":1}`)},
			{"id": "18446744073709551615-18446744073709551614", "type": "token",
				"data": json.RawMessage(`{"attempt":1,"field":"answer","content":"\u003cb\u003e \u2028é\u0001\"\\"}`)},
		},
		"ended_envelope": {
			{"id": "1700000000000-0", "type": "completed", "data": json.RawMessage(`{"result":{"outputs":{}}}`),
				"attempts": 1, "started_at": 1700000000000, "finished_at": 1700000000001},
			{"id": "1700000000000-3", "type": "completed", "data": json.RawMessage(`{"result":null}`),
				"attempts": 12, "started_at": 0, "finished_at": 4102444800000},
		},
	}
	byName := map[string]jobs.Template{}
	for _, tpl := range jobs.Templates() {
		byName[tpl.Name] = tpl
		if len(cases[tpl.Name]) == 0 {
			t.Errorf("template %s has no case", tpl.Name)
		}
	}
	for name, valueSets := range cases {
		for _, values := range valueSets {
			want, err := byName[name].Render(values)
			if err != nil {
				t.Fatal(err)
			}
			got, err := script.Run(context.Background(), db.Client, nil, name, luaValues(t, values)).Text()
			if err != nil {
				t.Fatalf("%s %v: %v", name, values, err)
			}
			if got != string(want) {
				t.Errorf("%s %v:\nfill   %s\nrender %s", name, values, got, want)
			}
		}
	}
}

// TestFillRefusesWrongKinds: a value that would not render as Go renders
// its field fails the script instead of appending a wrong event.
func TestFillRefusesWrongKinds(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	script := NewScript(fillScript)
	for _, c := range []struct {
		name, values, want string
	}{
		{"started", `{"attempt":"1"}`, "attempt is not an integer"},
		{"started", `{"attempt":1.5}`, "attempt is not an integer"},
		{"started", `{}`, "attempt is not an integer"},
		{"cancelled", `{"previous":3}`, "previous is not a string"},
		{"cancelled", `{"previous":"a\"b"}`, "previous is not a plain string"},
	} {
		err := script.Run(context.Background(), db.Client, nil, c.name, c.values).Err()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want an error saying %q", c.name, c.values, err, c.want)
		}
	}
}

// luaValues encodes values for cjson.decode: JSON values as strings.
func luaValues(t *testing.T, values jobs.Values) string {
	t.Helper()
	m := map[string]any{}
	for k, v := range values {
		if r, ok := v.(json.RawMessage); ok {
			v = string(r)
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
