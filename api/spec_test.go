package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/worker"
)

// TestJobSpecBody: POST /v1/jobs takes the spec's body, {"program"?,
// "inputs", "options"?}, beside {"question", "stream"?, "no_cache"?}; the
// decoder fills the spec's client part, the server its owner and queue.
func TestJobSpecBody(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ctx := context.Background()
	spec := func(body any) jobs.Spec {
		t.Helper()
		resp, out := b.do(t, "POST", "/v1/jobs", body, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit %v: %d %s", body, resp.StatusCode, out)
		}
		j, err := b.store.Get(ctx, decode[submitted](t, out).ID)
		if err != nil {
			t.Fatal(err)
		}
		return j.Spec
	}
	want := jobs.Spec{ClientSpec: jobs.QuestionSpec("What is Redis?"), ServerSpec: jobs.ServerSpec{Queue: jobs.QueueInteractive}}
	want.Options = jobs.Options{NoCache: true}
	for _, body := range []string{
		`{"program": "qa", "inputs": {"question": "What is Redis?"}, "options": {"no_cache": true, "stream": false}}`,
		`{"question": "What is Redis?", "no_cache": true, "stream": false}`,
	} {
		if d := cmp.Diff(want, spec(body)); d != "" {
			t.Errorf("%s: spec (-want +got):\n%s", body, d)
		}
	}
	// Unset options keep their defaults: token events while streaming is on.
	want.Options = jobs.Options{Stream: true}
	for _, body := range []string{`{"inputs": {"question": "What is Redis?"}}`, `{"inputs": {"question": "What is Redis?"}, "options": null}`} {
		if d := cmp.Diff(want, spec(body)); d != "" {
			t.Errorf("%s: spec (-want +got):\n%s", body, d)
		}
	}
	// The same request in either shape is the same request for its
	// Idempotency-Key.
	key := http.Header{"Idempotency-Key": {"either-shape"}}
	resp, first := b.do(t, "POST", "/v1/jobs", `{"question": "Same?"}`, key)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first: %d %s", resp.StatusCode, first)
	}
	resp, again := b.do(t, "POST", "/v1/jobs", `{"inputs": {"question": "Same?"}, "options": {"stream": true}}`, key)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Idempotent-Replayed") != "true" ||
		decode[submitted](t, again).ID != decode[submitted](t, first).ID {
		t.Errorf("the spec body did not replay the question's job: %d %s", resp.StatusCode, again)
	}
}

// TestJobSpecValidation: every field of the spec's server part, and those
// to come (the trace context), is refused in a request body, in either
// shape, naming the field; so are a mix of the shapes, an unknown program,
// input or option, and inputs over MAX_INPUT_BYTES.
func TestJobSpecValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{MaxInputBytes: 64}})
	type refusal struct{ body, field, msg string }
	var cases []refusal
	for _, f := range jobs.ServerFields {
		for _, body := range []string{`{"question": "q", %q: "x"}`, `{"inputs": {"question": "q"}, %q: {"id": "x"}}`} {
			cases = append(cases, refusal{fmt.Sprintf(body, f), f, f + ": set by the server, not by a request"})
		}
	}
	long := strings.Repeat("a", 60)
	cases = append(cases, []refusal{
		{`{"question": "q", "inputs": {"question": "q"}}`, "inputs",
			"inputs: not with question: the body is either {question, stream?, no_cache?} or {program?, inputs, options?}"},
		{`{"stream": true, "program": "qa"}`, "program",
			"program: not with stream: the body is either {question, stream?, no_cache?} or {program?, inputs, options?}"},
		{`{"program": "summarize", "inputs": {"question": "q"}}`, "program", "program: Input should be 'qa'"},
		{`{"program": 1, "inputs": {"question": "q"}}`, "program", "program: Input should be a valid string"},
		{`{"program": "qa"}`, "inputs", "inputs: Field required"},
		{`{"inputs": "q"}`, "inputs", "inputs: Input should be a valid dictionary or object to extract fields from"},
		{`{"inputs": {}}`, "inputs.question", "inputs.question: Field required"},
		{`{"inputs": {"question": "q", "context": "c"}}`, "inputs.context", "inputs.context: Extra inputs are not permitted"},
		{`{"inputs": {"question": 1.0}}`, "inputs.question", "inputs.question: Input should be a valid string"},
		{`{"inputs": {"question": " "}}`, "inputs.question", "inputs.question: String should not be blank (only whitespace)"},
		{`{"inputs": {"question": "q"}, "options": {"temperature": 0.2}}`, "options.temperature", "options.temperature: Extra inputs are not permitted"},
		{`{"inputs": {"question": "q"}, "options": {"stream": "yes"}}`, "options.stream", "options.stream: Input should be a valid boolean"},
		{`{"inputs": {"question": "q"}, "options": []}`, "options", "options: Input should be a valid dictionary or object to extract fields from"},
		{`{"inputs": {"question": "` + long + `"}}`, "inputs", "inputs: Inputs should take at most 64 bytes as JSON (MAX_INPUT_BYTES), not 75"},
		{`{"question": "` + long + `"}`, "question", "question: Inputs should take at most 64 bytes as JSON (MAX_INPUT_BYTES), not 75"},
	}...)
	for _, c := range cases {
		resp, out := b.do(t, "POST", "/v1/jobs", c.body, nil)
		got := decode[v1Error](t, out)
		if resp.StatusCode != http.StatusUnprocessableEntity || got.Error.Code != "validation_error" || got.Error.Field != c.field || got.Error.Message != c.msg {
			t.Errorf("%s: %d %s; want 422 field=%s message=%q", c.body, resp.StatusCode, out, c.field, c.msg)
		}
	}
}

// TestBatchItemSpec: an item of a batch upload is {"custom_id"?,
// "question"} or {"custom_id"?, "inputs"}, decoded as a job's body is; both
// run. An item that sets a server field (each is tried, in both forms),
// mixes the forms, sets what the batch sets (program, options) or breaks
// the program's inputs is a problem of its line naming the field; inputs
// over MAX_INPUT_BYTES name it.
func TestBatchItemSpec(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{MaxInputBytes: 64}})
	b.startBatchWorker(t, echoRunner, worker.Config{})
	v := b.upload(t, jsonl(`{"custom_id": "a", "inputs": {"question": "What is Redis?"}}`, `{"custom_id": "b", "question": "What is Go?"}`),
		"application/x-ndjson", nil)
	b.waitBatch(t, v.ID, "", "completed")
	var answers []string
	for _, l := range b.results(t, v.ID, "") {
		answers = append(answers, l.CustomID+" "+fmt.Sprint(l.Outputs["answer"]))
	}
	if want := []string{"a A: What is Redis?", "b A: What is Go?"}; !slices.Equal(answers, want) {
		t.Errorf("answers %q, want %q", answers, want)
	}

	type refusal struct{ item, field, reason string }
	var cases []refusal
	for _, f := range jobs.ServerFields {
		cases = append(cases,
			refusal{fmt.Sprintf(`{"question": "q", %q: "x"}`, f), f, "set by the server, not by a request"},
			refusal{fmt.Sprintf(`{"inputs": {"question": "q"}, %q: {"id": "x"}}`, f), f, "set by the server, not by a request"})
	}
	const forms = "{custom_id?, question} or {custom_id?, inputs}"
	cases = append(cases, []refusal{
		{`{"question": "q", "inputs": {"question": "q"}}`, "inputs", "not with question: an item is " + forms},
		{`{"inputs": {"question": "q"}, "options": {"no_cache": true}}`, "options", "unknown field (an item is " + forms + ")"},
		{`{"inputs": {"question": "q"}, "program": "qa"}`, "program", "unknown field (an item is " + forms + ")"},
		{`{"question": "q", "no_cache": true}`, "no_cache", "unknown field (an item is " + forms + ")"},
		{`{"inputs": "q"}`, "inputs", "must be a JSON object"},
		{`{"inputs": {}}`, "inputs.question", "Field required"},
		{`{"inputs": {"question": "q", "context": "c"}}`, "inputs.context", "unknown (known: question)"},
		{`{"inputs": {"question": 1.0}}`, "inputs.question", "must be a string"},
		{`{"inputs": {"question": "` + strings.Repeat("y", 60) + `"}}`, "inputs", "larger than MAX_INPUT_BYTES (64 bytes as JSON, got 75)"},
		{`{"question": "` + strings.Repeat("y", 60) + `"}`, "question", "larger than MAX_INPUT_BYTES (64 bytes as JSON, got 75)"},
	}...)
	var items []string
	for _, c := range cases {
		items = append(items, c.item)
	}
	resp, out := b.do(t, "POST", "/v1/batches", jsonl(items...), http.Header{"Content-Type": {"application/x-ndjson"}})
	e := decode[v1Error](t, out)
	if resp.StatusCode != http.StatusUnprocessableEntity || len(e.Error.Problems) != len(cases) {
		t.Fatalf("%d problems in %d %s; want one for each of %d lines", len(e.Error.Problems), resp.StatusCode, out, len(cases))
	}
	for i, c := range cases {
		if p := e.Error.Problems[i]; p.Line != i+1 || p.Field != c.field || p.Reason != c.reason {
			t.Errorf("%s: problem %+v; want line %d field=%s reason=%q", c.item, p, i+1, c.field, c.reason)
		}
	}
}

// TestSeedIgnoresServerFields: the seed's endpoints keep their pydantic
// models' contract, ignoring unknown fields, server fields among them:
// the request runs as its server part says, not as its body does.
func TestSeedIgnoresServerFields(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startWorker(t, answerBehaviour)
	for _, f := range jobs.ServerFields {
		for path, body := range map[string]string{
			"/predict": fmt.Sprintf(`{"question": "q", %q: "x"}`, f),
			"/batch":   fmt.Sprintf(`[{"question": "q"}, {"question": "q", %q: "x"}]`, f),
		} {
			resp, out := b.do(t, "POST", path, body, nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), "Answer to: q") {
				t.Errorf("%s %s: %d %s", path, body, resp.StatusCode, out)
			}
		}
	}
}
