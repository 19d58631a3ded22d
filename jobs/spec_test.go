package jobs_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
)

func question(q string, opts jobs.Options, queue string) jobs.Spec {
	s := jobs.Spec{ClientSpec: jobs.QuestionSpec(q), ServerSpec: jobs.ServerSpec{Owner: "alice", Queue: queue}}
	s.Options = opts
	return s
}

func hash(t *testing.T, s jobs.Spec) string {
	t.Helper()
	h, err := s.Hash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSpecHashOfAQuestionIsTheReleases: a {"question": …} request hashes as
// release 114e39c hashed it (sha256 of {"q","queue","stream","no_cache"}),
// so an Idempotency-Key replayed across the upgrade finds its job. The first
// hash is the one that release stored for its job asking "How far is the
// Moon?" (internal/upgradetest/testdata/114e39c); the second is the sha256
// of {"q":"a \u003c b \u0026 c?","queue":"batch","stream":false,"no_cache":true}.
func TestSpecHashOfAQuestionIsTheReleases(t *testing.T) {
	t.Parallel()
	for want, s := range map[string]jobs.Spec{
		"5a6785fd080d77f534e462b838fc1608854ba37c42883a1e6c62666f80617f2d": question("How far is the Moon?", jobs.Options{Stream: true}, jobs.QueueInteractive),
		"5cc62edec3514fcb126f9bf1dc4cd3d9fc8ffd2366db4e2c5a62dd1a963282ff": question("a < b & c?", jobs.Options{NoCache: true}, jobs.QueueBatch),
	} {
		if got := hash(t, s); got != want {
			t.Errorf("hash of %+v = %s, want %s", s, got, want)
		}
		other := s
		other.Owner, other.ProgramVersion = "bob", "v2"
		if got := hash(t, other); got != want {
			t.Errorf("the owner or the program version changed the hash: %s", got)
		}
	}
}

// TestSpecHashCanonical: every other request hashes its program, inputs
// (keys in any order, numbers as written), options and queue.
func TestSpecHashCanonical(t *testing.T) {
	t.Parallel()
	base := question("q?", jobs.Options{}, jobs.QueueInteractive)
	with := func(f func(*jobs.Spec)) jobs.Spec {
		s := base
		s.Inputs = jobs.Inputs{}
		for k, v := range base.Inputs {
			s.Inputs[k] = v
		}
		f(&s)
		return s
	}
	one := with(func(s *jobs.Spec) { s.Inputs["n"] = json.Number("1") })
	variants := map[string]jobs.Spec{
		"question":       base,
		"an input more":  one,
		"1.0, not 1":     with(func(s *jobs.Spec) { s.Inputs["n"] = json.Number("1.0") }),
		"another queue":  with(func(s *jobs.Spec) { s.Inputs["n"] = json.Number("1"); s.Queue = jobs.QueueBatch }),
		"streamed":       with(func(s *jobs.Spec) { s.Inputs["n"] = json.Number("1"); s.Options.Stream = true }),
		"another prog":   with(func(s *jobs.Spec) { s.Inputs["n"] = json.Number("1"); s.Program = "other" }),
		"no question":    with(func(s *jobs.Spec) { s.Inputs = jobs.Inputs{"text": "q?"} }),
		"not a string":   with(func(s *jobs.Spec) { s.Inputs["question"] = json.Number("7") }),
		"nested objects": with(func(s *jobs.Spec) { s.Inputs["m"] = map[string]any{"b": 1, "a": []any{"x"}} }),
	}
	seen := map[string]string{}
	for name, s := range variants {
		h := hash(t, s)
		if other, dup := seen[h]; dup {
			t.Errorf("%s and %s hash the same", name, other)
		}
		seen[h] = name
	}
	// The same request built in another order hashes the same.
	again := jobs.Spec{ClientSpec: jobs.ClientSpec{Program: jobs.ProgramQA, Inputs: jobs.Inputs{"n": json.Number("1"), "question": "q?"}},
		ServerSpec: jobs.ServerSpec{Queue: jobs.QueueInteractive, Owner: "someone else"}}
	if hash(t, again) != hash(t, one) {
		t.Errorf("the same request hashes differently")
	}
}

// TestServerFieldsNameTheServerPart: every field of the server part is one
// a request may not set.
func TestServerFieldsNameTheServerPart(t *testing.T) {
	t.Parallel()
	st := reflect.TypeFor[jobs.ServerSpec]()
	for i := range st.NumField() {
		name, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
		if !jobs.IsServerField(name) {
			t.Errorf("ServerSpec.%s (%q) is not in ServerFields", st.Field(i).Name, name)
		}
	}
	ct := reflect.TypeFor[jobs.ClientSpec]()
	for i := range ct.NumField() {
		if name, _, _ := strings.Cut(ct.Field(i).Tag.Get("json"), ","); jobs.IsServerField(name) {
			t.Errorf("the client part's %q is a server field", name)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	lim := jobs.Limits{MaxQuestionChars: 10, MaxInputBytes: 50}
	for _, c := range []struct {
		name string
		spec jobs.ClientSpec
		want *jobs.SpecError
	}{
		{"ok", jobs.QuestionSpec("Why?"), nil},
		{"ten characters", jobs.QuestionSpec("日本語日本語日本語日"), nil},
		{"unknown input", jobs.ClientSpec{Program: "qa", Inputs: jobs.Inputs{"question": "q", "context": "c"}},
			&jobs.SpecError{Field: "inputs.context", Problem: jobs.ProblemUnknown, Known: []string{"question"}}},
		{"missing", jobs.ClientSpec{Program: "qa"}, &jobs.SpecError{Field: "inputs.question", Problem: jobs.ProblemMissing}},
		{"a number", jobs.ClientSpec{Program: "qa", Inputs: jobs.Inputs{"question": json.Number("1")}},
			&jobs.SpecError{Field: "inputs.question", Problem: jobs.ProblemNotString}},
		{"null", jobs.ClientSpec{Program: "qa", Inputs: jobs.Inputs{"question": nil}},
			&jobs.SpecError{Field: "inputs.question", Problem: jobs.ProblemNotString}},
		{"empty", jobs.QuestionSpec(""), &jobs.SpecError{Field: "inputs.question", Problem: jobs.ProblemEmpty}},
		{"too long", jobs.QuestionSpec("01234567890"),
			&jobs.SpecError{Field: "inputs.question", Problem: jobs.ProblemTooLong, Limit: 10, Got: 11}},
		{"blank", jobs.QuestionSpec(" \t\n\u00a0"), &jobs.SpecError{Field: "inputs.question", Problem: jobs.ProblemBlank}},
		{"too large", jobs.QuestionSpec("<<<<<<<<<"), // 9 characters, 54 bytes as JSON (\u003c)
			&jobs.SpecError{Field: "inputs", Problem: jobs.ProblemTooLarge, Limit: 50, Got: 69}},
	} {
		got := checkSpecError(t, c.name, c.spec.Validate(lim, jobs.QAProgram()), c.want)
		if got != nil && !strings.HasPrefix(got.Error(), got.Field+": ") {
			t.Errorf("%s: message %q does not name %s", c.name, got.Error(), got.Field)
		}
	}
	if err := jobs.QuestionSpec(strings.Repeat("x", 10)).Validate(jobs.Limits{MaxQuestionChars: 10}, jobs.QAProgram()); err != nil {
		t.Errorf("MaxInputBytes 0 is no limit: %v", err)
	}
}

// checkSpecError fails the test unless err is want (nil for none); it
// returns err as a *SpecError, or nil when it is none or another error.
func checkSpecError(t *testing.T, name string, err error, want *jobs.SpecError) *jobs.SpecError {
	t.Helper()
	var got *jobs.SpecError
	if err != nil && !errors.As(err, &got) {
		t.Errorf("%s: %v is not a *SpecError", name, err)
		return nil
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s: (-want +got):\n%s", name, d)
	}
	return got
}

// A pushed program's inputs are checked against their types; the QA
// question's text limits are the QA program's alone.
func TestSpecValidateTyped(t *testing.T) {
	t.Parallel()
	sig, err := program.ParseSignature("claims: list[str], quote, n: int -> supported: bool", "")
	if err != nil {
		t.Fatal(err)
	}
	p := jobs.Program{Name: "claims", Inputs: sig.Inputs()}
	lim := jobs.Limits{MaxQuestionChars: 1, MaxInputBytes: 1000}
	for _, c := range []struct {
		name   string
		inputs string
		want   *jobs.SpecError
	}{
		{"ok", `{"claims": ["a", "b"], "quote": "", "n": 3}`, nil},
		{"a string for a list", `{"claims": "a", "quote": "q", "n": 3}`,
			&jobs.SpecError{Field: "inputs.claims", Problem: jobs.ProblemType, Expected: "list[str]", Actual: "a string"}},
		{"an item", `{"claims": ["a", 1], "quote": "q", "n": 3}`,
			&jobs.SpecError{Field: "inputs.claims[1]", Problem: jobs.ProblemType, Expected: "str", Actual: "a number (1)"}},
		{"a fraction for an int", `{"claims": [], "quote": "q", "n": 3.5}`,
			&jobs.SpecError{Field: "inputs.n", Problem: jobs.ProblemType, Expected: "int", Actual: "a number (3.5)"}},
		{"missing", `{"claims": [], "n": 3}`, &jobs.SpecError{Field: "inputs.quote", Problem: jobs.ProblemMissing}},
		{"unknown", `{"claims": [], "quote": "q", "n": 3, "question": "q"}`,
			&jobs.SpecError{Field: "inputs.question", Problem: jobs.ProblemUnknown, Known: []string{"claims", "quote", "n"}}},
	} {
		spec, err := jobs.ParseSpec([]byte(`{"program": "claims", "inputs": ` + c.inputs + `}`))
		if err != nil {
			t.Fatal(err)
		}
		checkSpecError(t, c.name, spec.ClientSpec.Validate(lim, p), c.want)
	}
	want := "inputs.claims: expected list[str], got a string"
	if err := (jobs.ClientSpec{Program: "claims", Inputs: jobs.Inputs{"claims": "a", "quote": "q", "n": 1}}).Validate(lim, p); err == nil || err.Error() != want {
		t.Errorf("message %v, want %s", err, want)
	}
}

func TestOptionsSet(t *testing.T) {
	t.Parallel()
	o := jobs.Options{Stream: true}
	if err := o.Set(map[string]any{"no_cache": true, "stream": nil}); err != nil || o != (jobs.Options{Stream: true, NoCache: true}) {
		t.Fatalf("set = %+v %v; want the default stream kept, no_cache set", o, err)
	}
	if err := o.Set(map[string]any{"stream": false}); err != nil || o.Stream {
		t.Fatalf("set stream false = %+v %v", o, err)
	}
	var se *jobs.SpecError
	if err := o.Set(map[string]any{"temperature": 0.2}); !errors.As(err, &se) || se.Field != "options.temperature" ||
		se.Problem != jobs.ProblemUnknown || !slices.Equal(se.Known, []string{"no_cache", "stream"}) {
		t.Errorf("unknown option: %v", err)
	}
	if err := o.Set(map[string]any{"stream": "yes"}); !errors.As(err, &se) || se.Field != "options.stream" || se.Problem != jobs.ProblemNotBool {
		t.Errorf("a string for a boolean: %v", err)
	}
}

// TestParseSpec: a stored spec reads back as it was written, numbers as
// written.
func TestSpecHashLeavesTheTraceOut(t *testing.T) {
	t.Parallel()
	// A client's retry comes with a new span: it must still replay its job.
	s := jobs.Spec{ClientSpec: jobs.QuestionSpec("q"), ServerSpec: jobs.ServerSpec{Queue: jobs.QueueInteractive}}
	a, err := s.Hash()
	if err != nil {
		t.Fatal(err)
	}
	s.Trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	b, err := s.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("the trace changes the hash: %s != %s", a, b)
	}
	got, err := jobs.ParseSpec(must(s.Marshal()))
	if err != nil || got.Trace != s.Trace {
		t.Fatalf("trace read back as %q (%v)", got.Trace, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestParseSpec(t *testing.T) {
	t.Parallel()
	s := jobs.Spec{
		ClientSpec: jobs.ClientSpec{Program: "qa", Inputs: jobs.Inputs{"question": "q", "n": json.Number("1.0"), "big": json.Number("123456789012345678901234567890")},
			Options: jobs.Options{NoCache: true}},
		ServerSpec: jobs.ServerSpec{Owner: "alice", Queue: jobs.QueueBatch},
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"program":"qa","inputs":{"big":123456789012345678901234567890,"n":1.0,"question":"q"},"options":{"no_cache":true},"owner":"alice","queue":"batch"}`
	if string(b) != want {
		t.Errorf("stored as %s, want %s", b, want)
	}
	got, err := jobs.ParseSpec(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(s, got); d != "" {
		t.Errorf("read back (-written +read):\n%s", d)
	}
}
