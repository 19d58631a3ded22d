package jobs_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/jobs"
)

// TestOutputsKeepTheirOrder: outputs marshal in their order, as an object,
// and read back in the order they were written.
func TestOutputsKeepTheirOrder(t *testing.T) {
	t.Parallel()
	out := jobs.Outputs{
		{Name: "reasoning", Value: "Because <b> & more."},
		{Name: "answer", Value: "42"},
		{Name: "scores", Value: map[string]any{"b": 2, "a": 1}},
		{Name: "tags", Value: []string{"x", "y"}},
		{Name: "none", Value: nil},
	}
	b, err := json.Marshal(jobs.Result{Outputs: out})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"outputs":{"reasoning":"Because \u003cb\u003e \u0026 more.","answer":"42","scores":{"a":1,"b":2},"tags":["x","y"],"none":null},` +
		`"provenance":{"model":"","program_state_sha256":"","cache_hit":false,"attempts":0,"lm_calls":0},"usage":null,"latency_seconds":0,"cost_micro_usd":null}`
	if string(b) != want {
		t.Errorf("marshal:\n got %s\nwant %s", b, want)
	}
	var back jobs.Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	wantBack := jobs.Outputs{
		{Name: "reasoning", Value: "Because <b> & more."},
		{Name: "answer", Value: "42"},
		{Name: "scores", Value: map[string]any{"a": json.Number("1"), "b": json.Number("2")}},
		{Name: "tags", Value: []any{"x", "y"}},
		{Name: "none", Value: nil},
	}
	if d := cmp.Diff(wantBack, back.Outputs); d != "" {
		t.Errorf("unmarshal (-want +got):\n%s", d)
	}
	if v, ok := back.Outputs.Get("answer"); !ok || v != "42" || back.Answer("answer") != "42" {
		t.Errorf("Get(answer) = %v, %v", v, ok)
	}
	if _, ok := back.Outputs.Get("missing"); ok || back.Answer("missing") != "" {
		t.Error("Get(missing) found something")
	}
}

// TestOutputsEscapeAsTheirEncoderAsks: an Encoder that leaves HTML alone
// gets the outputs unescaped too, as it got a map's.
func TestOutputsEscapeAsTheirEncoderAsks(t *testing.T) {
	t.Parallel()
	for _, escape := range []bool{true, false} {
		encode := func(v any) string {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(escape)
			if err := enc.Encode(v); err != nil {
				t.Fatal(err)
			}
			return b.String()
		}
		got := encode(jobs.Outputs{{Name: "a<", Value: "<&>\u2028"}})
		if want := encode(map[string]any{"a<": "<&>\u2028"}); got != want {
			t.Errorf("escape %v: %s, want %s", escape, got, want)
		}
	}
}

// TestOutputsNullAndEmpty: absent outputs stay null (and are left out of a
// failed line); no outputs are an empty object.
func TestOutputsNullAndEmpty(t *testing.T) {
	t.Parallel()
	for v, want := range map[*jobs.Outputs]string{new(jobs.Outputs): "null", {}: "{}"} {
		b, err := json.Marshal(*v)
		if err != nil || string(b) != want {
			t.Errorf("marshal %#v = %s, %v; want %s", *v, b, err, want)
		}
		var back jobs.Outputs
		if err := json.Unmarshal(b, &back); err != nil || (back == nil) != (*v == nil) {
			t.Errorf("unmarshal %s = %#v, %v", b, back, err)
		}
	}
	b, err := json.Marshal(jobs.ItemResult{CustomID: "x", Status: jobs.StatusFailed})
	if err != nil || bytes.Contains(b, []byte("outputs")) {
		t.Errorf("failed line = %s, %v; want no outputs", b, err)
	}
	var out jobs.Outputs
	if err := json.Unmarshal([]byte(`["answer"]`), &out); err == nil {
		t.Error("an array read as outputs")
	}
}

// A float output written as 1.0 (Python's json.dumps form, which the worker
// writes) reads back and goes out again as 1.0, not as the integer 1.
func TestOutputsKeepNumbersAsWritten(t *testing.T) {
	in := `{"confidence":1.0,"scores":[2.0,0.5],"count":3,"big":1e+20}`
	var o jobs.Outputs
	if err := json.Unmarshal([]byte(in), &o); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != in {
		t.Errorf("round trip:\n got %s\nwant %s", b, in)
	}
}

// outputObjects are outputs as results store them, and shapes the fast
// path must read as the token reader does or leave to it.
var outputObjects = []string{
	`{"reasoning":"Because.\nSo: \"42\" \u003c\u2028 é \ud83d\ude00","answer":"42"}`,
	`{"n":1.50,"m":-0,"e":1e400,"t":true,"f":false,"z":null,"s":""}`,
	`{"nested":{"b":[1,{"c":"}"}],"a":"]"},"list":["a",["b"],{}],"empty":[]}`,
	` { "a" : "x" , "b" :[ 1 , 2 ] } `,
	`{"dup":"1","dup":"2"}`,
	`{"k\"ey":"v","caf` + "\xc3\xa9" + `":"bad ` + "\xff" + ` utf8"}`,
	`{}`, `[]`, `"s"`, `1`, `{"a":}`, `{"a":1,}`, `{"a" 1}`, `{"a":1`, ``,
}

// TestOutputsReadAsTheTokenReader: Outputs.UnmarshalJSON reads every object
// as the token reader it falls back to does (same fields, same failures).
func TestOutputsReadAsTheTokenReader(t *testing.T) {
	t.Parallel()
	for _, s := range outputObjects {
		checkOutputs(t, s)
	}
}

func FuzzOutputs(f *testing.F) {
	for _, s := range outputObjects {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkOutputs(t, s) })
}

func checkOutputs(t *testing.T, s string) {
	t.Helper()
	want, wantErr := jobs.UnmarshalOutputsTokens([]byte(s))
	var got jobs.Outputs
	err := got.UnmarshalJSON([]byte(s))
	if s == "null" {
		return
	}
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("UnmarshalJSON(%q) error = %v, token reader: %v", s, err, wantErr)
	}
	if err == nil {
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("UnmarshalJSON(%q) (-token reader +got):\n%s", s, d)
		}
	}
}

// TestOutputsUnmarshalAllocs: a result's string outputs are read without
// encoding/json's token machinery (64 allocations for these before, 20
// after).
func TestOutputsUnmarshalAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	data := []byte(`{"reasoning":"Short\nand plain.","answer":"Paris is\nthe capital.","key_concepts":"capital, France","question_type":"factual"}`)
	allocs := testing.AllocsPerRun(100, func() {
		var o jobs.Outputs
		if err := o.UnmarshalJSON(data); err != nil || len(o) != 4 {
			t.Fatalf("UnmarshalJSON: %v, %d outputs", err, len(o))
		}
	})
	if allocs > 24 {
		t.Errorf("UnmarshalJSON: %.0f allocations, want at most 24", allocs)
	}
}

// TestOutputsMarshalAllocs: a result's outputs, written in every completed
// job's view, are encoded with a pooled encoder and buffer, their names
// without boxing (7 allocations for these before, 1 after: the bytes
// returned).
func TestOutputsMarshalAllocs(t *testing.T) {
	o := jobs.Outputs{{Name: "reasoning", Value: "Short <and> plain."}, {Name: "answer", Value: "Paris is\nthe capital."},
		{Name: "key_concepts", Value: []any{"capital", "France"}}, {Name: "n", Value: json.Number("1.0")}}
	const want = `{"reasoning":"Short <and> plain.","answer":"Paris is\nthe capital.","key_concepts":["capital","France"],"n":1.0}`
	if b, err := o.MarshalJSON(); err != nil || string(b) != want {
		t.Fatalf("MarshalJSON = %s, %v; want %s", b, err, want)
	}
	if raceEnabled {
		return
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := o.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations", allocs)
	if allocs > 1 {
		t.Errorf("MarshalJSON: %.0f allocations, want at most 1", allocs)
	}
}
