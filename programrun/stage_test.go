package programrun_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/qaqueue/qaqueue/programrun"
)

// TestResumedIsFinished: a stage read back from its checkpoint hands later
// stages the values it returned (a float stays a float, keys keep their
// order), and the same result and usage.
func TestResumedIsFinished(t *testing.T) {
	out := program.NewMap()
	out.Set("claims", []any{"a", "b"})
	out.Set("confidence", 1.0)
	out.Set("count", int64(2))
	res := &program.Result{Outputs: out, Usage: map[string]program.Usage{"m": {"total_tokens": int64(7)}}, Calls: 1}
	done, err := programrun.Finished("extract", res, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	back, err := programrun.Resumed(done.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(done.Outputs, back.Outputs); diff != "" {
		t.Errorf("outputs read back (-finished +resumed):\n%s", diff)
	}
	if _, ok := back.Outputs["confidence"].(float64); !ok {
		t.Errorf("confidence read back as %T, want float64", back.Outputs["confidence"])
	}
	if diff := cmp.Diff(done.Result, back.Result); diff != "" {
		t.Errorf("result (-finished +resumed):\n%s", diff)
	}
	st := programfile.Stage{Key: "verify", Inputs: []programfile.Binding{
		{Field: "claims", Stage: "extract", From: "claims"}, {Field: "quote", From: "quote"}, {Field: "missing", From: "nothing"}}}
	in := programrun.Inputs(st, jobs.Inputs{"quote": "q"}, map[string]*programrun.Stage{"extract": back})
	if diff := cmp.Diff(map[string]any{"claims": []any{"a", "b"}, "quote": "q"}, in); diff != "" {
		t.Errorf("inputs (-want +got):\n%s", diff)
	}
}

func TestProgramName(t *testing.T) {
	for spec, want := range map[string]string{"": jobs.ProgramQA, "claims": "claims", "claims@stable": "claims"} {
		if got := programrun.ProgramName(spec); got != want {
			t.Errorf("ProgramName(%q) = %q, want %q", spec, got, want)
		}
	}
}
