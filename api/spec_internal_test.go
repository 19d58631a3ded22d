package api

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/jobs"
)

// TestSpecKeepsNumbersAsWritten: the inputs a body gives reach the spec
// with their numbers as written (json.Number), in a job's body (either
// form) and in a batch upload's item: DSPy renders 1 and 1.0 differently.
// (No input of today's one program takes a number, so this looks at the
// spec before Validate.)
func TestSpecKeepsNumbersAsWritten(t *testing.T) {
	t.Parallel()
	const body = `{"inputs": {"question": "q", "n": 1.0, "big": 123456789012345678901234567890, "list": [1e2]}}`
	want := jobs.Inputs{"question": "q", "n": json.Number("1.0"), "big": json.Number("123456789012345678901234567890"),
		"list": []any{json.Number("1e2")}}
	v, err := parseJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var full jobs.ClientSpec
	if _, err := fullSpec(v.(map[string]any), &full); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, full.Inputs); d != "" {
		t.Errorf("a job's body (-want +got):\n%s", d)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	values, err := itemValues(raw)
	if err != nil {
		t.Fatal(err)
	}
	var item jobs.ClientSpec
	if _, err := fullSpec(values, &item); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, item.Inputs); d != "" {
		t.Errorf("a batch item (-want +got):\n%s", d)
	}
	v, err = parseJSON([]byte(`{"question": 1.0}`))
	if err != nil {
		t.Fatal(err)
	}
	short := jobs.ClientSpec{Inputs: jobs.Inputs{}}
	jobForm.shortSpec(v.(map[string]any), &short)
	if d := cmp.Diff(jobs.Inputs{"question": json.Number("1.0")}, short.Inputs); d != "" {
		t.Errorf("the short form (-want +got):\n%s", d)
	}
}
