package api_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/programs"
)

const twoStageDir = "../programfile/testdata/twostage"

// twoStagePush is a push body of the two-stage test program, its
// description changed by tag (a version of its own) when tag is set.
func twoStagePush(t *testing.T, tag string) map[string]any {
	t.Helper()
	read := func(name string) string {
		b, err := os.ReadFile(twoStageDir + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	file := read("program.yaml")
	if tag != "" {
		file = strings.Replace(file, "description: ", "description: "+tag+" ", 1)
	}
	return map[string]any{"file": file, "source": read("signatures.py"), "state": read("optimized.json")}
}

type pushed struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Created bool     `json:"created"`
	Pruned  []string `json:"pruned"`
}

// push pushes body as program name with hdr and wants status.
func (b *bundle) push(t *testing.T, name string, body any, hdr http.Header, status int) pushed {
	t.Helper()
	resp, out := b.do(t, "PUT", "/v1/programs/"+name, body, hdr)
	if resp.StatusCode != status {
		t.Fatalf("push %s: %d %s, want %d", name, resp.StatusCode, out, status)
	}
	return decode[pushed](t, out)
}

func TestProgramRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	ops, alice := bearer(opsKey), bearer(aliceKey)

	b.wantV1ErrorBody(t, "PUT", "/v1/programs/two-stage", twoStagePush(t, ""), alice, http.StatusForbidden, "")
	first := b.push(t, "two-stage", twoStagePush(t, ""), ops, http.StatusCreated)
	if len(first.Version) != 64 || !first.Created {
		t.Fatalf("push: %+v", first)
	}
	if again := b.push(t, "two-stage", twoStagePush(t, ""), ops, http.StatusOK); again.Version != first.Version || again.Created {
		t.Errorf("identical push: %+v", again)
	}
	second := b.push(t, "two-stage", twoStagePush(t, "v2"), ops, http.StatusCreated)

	// Any key lists programs: versions, aliases, stages and schemas, never
	// the instructions, demos or source.
	for _, path := range []string{"/v1/programs", "/v1/programs/two-stage"} {
		resp, out := b.do(t, "GET", path, nil, alice)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, out)
		}
		for _, want := range []string{second.Version, `"latest":"` + second.Version + `"`, `"key":"answer.predict"`, `"input_schema":{"additionalProperties":false,"properties":{"question":`, `"sufficient":{"title":"Sufficient","type":"boolean"}`} {
			if !strings.Contains(string(out), want) {
				t.Errorf("GET %s lacks %s: %s", path, want, out)
			}
		}
		for _, secret := range []string{"Who wrote Hamlet", "Given the fields", "class Answer", `"detail"`} {
			if strings.Contains(string(out), secret) {
				t.Errorf("GET %s shows an API key %q: %s", path, secret, out)
			}
		}
	}
	// An admin key also gets the version's instructions, demos and source.
	resp, out := b.do(t, "GET", "/v1/programs/two-stage?version="+first.Version, nil, ops)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin GET: %d %s", resp.StatusCode, out)
	}
	for _, want := range []string{"Who wrote Hamlet", "Given the fields `question`, `context`", "class Answer(dspy.Signature)", `"version":"` + first.Version} {
		if !strings.Contains(string(out), want) {
			t.Errorf("admin GET lacks %q: %s", want, out)
		}
	}
	b.wantV1ErrorBody(t, "GET", "/v1/programs/nope", nil, alice, http.StatusNotFound, "")
	// Nothing but a name and a version reaches a key name.
	b.wantV1ErrorBody(t, "GET", "/v1/programs/two-stage:versions", nil, alice, http.StatusNotFound, "")
	b.wantV1ErrorBody(t, "GET", "/v1/programs/two-stage?version=..%2Fx", nil, ops, http.StatusNotFound, "version")

	// Aliases: admin keys move them; a move is what new jobs resolve.
	alias := "/v1/programs/two-stage/aliases/stable"
	b.wantV1ErrorBody(t, "PUT", alias, map[string]string{"version": first.Version}, alice, http.StatusForbidden, "")
	b.wantV1ErrorBody(t, "PUT", alias, map[string]string{"version": "0123456789ab"}, ops, http.StatusUnprocessableEntity, "version")
	b.wantV1ErrorBody(t, "PUT", alias, map[string]string{}, ops, http.StatusUnprocessableEntity, "version")
	b.wantV1ErrorBody(t, "PUT", "/v1/programs/two-stage/aliases/Not_An_Alias", map[string]string{"version": first.Version}, ops, http.StatusUnprocessableEntity, "alias")
	resp, out = b.do(t, "PUT", alias, map[string]string{"version": first.Version[:12]}, ops)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"version":"`+first.Version+`"`) {
		t.Fatalf("alias: %d %s", resp.StatusCode, out)
	}
	if _, v, err := b.programs.Resolve(context.Background(), "two-stage@stable"); err != nil || v != first.Version {
		t.Errorf("stable resolves to %s (%v), want %s", v, err, first.Version)
	}
}

// wantV1ErrorBody checks that a request with body gets status with a /v1
// error body naming field ("" for none).
func (b *bundle) wantV1ErrorBody(t *testing.T, method, path string, body any, hdr http.Header, status int, field string) v1Error {
	t.Helper()
	resp, out := b.do(t, method, path, body, hdr)
	got := decode[v1Error](t, out)
	if resp.StatusCode != status || got.Error.Field != field || got.Error.Message == "" {
		t.Errorf("%s %s: %d %.400s, want %d naming field %q", method, path, resp.StatusCode, out, status, field)
	}
	return got
}

// Every bad push is a 4xx naming the part at fault and the problem, and
// stores nothing.
func TestProgramPushRefusals(t *testing.T) {
	t.Parallel()
	const maxBytes = 16 << 10
	b := setup(t, options{programs: programs.Config{MaxBytes: maxBytes}}) // qa dev: anonymous, admin
	good := twoStagePush(t, "")
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for key, val := range good {
			m[key] = val
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		url    string
		body   any
		status int
		field  string
		says   string
	}{
		{"over PROGRAM_MAX_BYTES", "two-stage", with("state", strings.Repeat(" ", maxBytes)), 413, "push", "PROGRAM_MAX_BYTES (16384)"},
		{"over the wire limit", "two-stage", with("state", strings.Repeat("\n", 3*maxBytes+64<<10)), 413, "body", "PROGRAM_MAX_BYTES (16384)"},
		{"an anchor", "two-stage", with("file", "name: &n two-stage\nstages: []\n"), 422, "file", "file: 1:7: name: anchors (&n) are not allowed"},
		{"a YAML tag", "two-stage", with("file", "name: !!str two-stage\nstages: []\n"), 422, "file", "1:7: name: tags (!!str) are not allowed"},
		{"another program's name", "claims", good, 422, "name", `the file is program "two-stage", pushed as "claims"`},
		{"an unreadable source", "two-stage", with("source", "class Answer(dspy.Signature):\n    x: Callable = dspy.InputField()\n"), 422, "source", "signatures.py:2"},
		{"a state of another program", "two-stage", with("state", `{"other.predict": {"demos": []}}`), 422, "state", "other.predict"},
		{"no source", "two-stage", with("source", nil), 422, "source", "the file names source signatures.py, which the push lacks"},
		{"no file", "two-stage", with("file", nil), 422, "file", "file: required"},
		{"a file that is no string", "two-stage", with("file", 7), 422, "file", "file: must be a string"},
		{"a path instead of contents", "two-stage", with("path", "/etc/passwd"), 422, "path", "unknown field"},
		{"not JSON", "two-stage", "name: two-stage", 422, "body", "not a JSON object"},
		{"two objects", "two-stage", `{"file": "a"} {}`, 422, "body", "one JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := b.wantV1ErrorBody(t, "PUT", "/v1/programs/"+tc.url, tc.body, nil, tc.status, tc.field)
			if !strings.Contains(got.Error.Message, tc.says) {
				t.Errorf("message %q does not say %q", got.Error.Message, tc.says)
			}
		})
	}
	if keys, err := b.db.Client.Keys(context.Background(), "qa:program*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("refused pushes left %v (%v)", keys, err)
	}
}

// A job names a program (and an alias): it is resolved once, at submit,
// into the spec's program_version, and its inputs are checked against the
// program's types.
func TestSubmitResolvesProgram(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ctx := context.Background()
	v1 := b.push(t, "two-stage", twoStagePush(t, "v1"), nil, http.StatusCreated).Version
	v2 := b.push(t, "two-stage", twoStagePush(t, "v2"), nil, http.StatusCreated).Version
	if resp, out := b.do(t, "PUT", "/v1/programs/two-stage/aliases/stable", map[string]string{"version": v1}, nil); resp.StatusCode != 200 {
		t.Fatalf("alias: %d %s", resp.StatusCode, out)
	}
	inputs := map[string]any{"question": "Who wrote Hamlet?", "context": []string{"Hamlet is by Shakespeare."}}
	for ref, want := range map[string]string{"two-stage": v2, "two-stage@latest": v2, "two-stage@stable": v1} {
		resp, out := b.do(t, "POST", "/v1/jobs", map[string]any{"program": ref, "inputs": inputs}, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit %s: %d %s", ref, resp.StatusCode, out)
		}
		j, err := b.store.Get(ctx, decode[submitted](t, out).ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.Spec.Program != ref || j.Spec.ProgramVersion != want {
			t.Errorf("%s: spec program %q version %q, want %q %q", ref, j.Spec.Program, j.Spec.ProgramVersion, ref, want)
		}
	}
	// qa without a pushed qa is the built-in program, version "".
	j, err := b.store.Get(ctx, b.submit(t, "Why?"))
	if err != nil || j.Spec.Program != "qa" || j.Spec.ProgramVersion != "" {
		t.Errorf("qa: %+v %v", j.Spec, err)
	}

	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
		says  string
	}{
		{"unknown program", map[string]any{"program": "claims", "inputs": inputs}, "program", "'qa' or 'two-stage'"},
		{"unknown alias", map[string]any{"program": "two-stage@canary", "inputs": inputs}, "program", "'two-stage@latest' or 'two-stage@stable'"},
		{"a string for a list", map[string]any{"program": "two-stage", "inputs": map[string]any{"question": "q", "context": "c"}},
			"inputs.context", "inputs.context: expected list[str], got a string"},
		{"an item of the wrong type", map[string]any{"program": "two-stage", "inputs": map[string]any{"question": "q", "context": []any{"c", 2}}},
			"inputs.context[1]", "expected str, got a number (2)"},
		{"a missing input", map[string]any{"program": "two-stage", "inputs": map[string]any{"question": "q"}}, "inputs.context", "Field required"},
		{"an unknown input", map[string]any{"program": "two-stage", "inputs": map[string]any{"question": "q", "context": []string{}, "quote": "x"}}, "inputs.quote", "Extra inputs"},
		{"qa's question type", map[string]any{"inputs": map[string]any{"question": []string{"q"}}}, "inputs.question", "valid string"},
	} {
		got := b.wantV1ErrorBody(t, "POST", "/v1/jobs", tc.body, nil, http.StatusUnprocessableEntity, tc.field)
		if !strings.Contains(got.Error.Message, tc.says) {
			t.Errorf("%s: message %q does not say %q", tc.name, got.Error.Message, tc.says)
		}
	}
}

// A batch's program is resolved at create and stored in its shared spec;
// its lines are {"custom_id", "inputs"} checked against the program.
func TestBatchProgram(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	v := b.push(t, "two-stage", twoStagePush(t, ""), nil, http.StatusCreated).Version
	nd := http.Header{"Content-Type": {"application/x-ndjson"}}
	resp, out := b.do(t, "POST", "/v1/batches?program=two-stage", jsonl(
		`{"custom_id":"a","inputs":{"question":"q","context":["c"]}}`,
		`{"custom_id":"b","inputs":{"question":"q","context":"c"}}`,
		`{"custom_id":"c","inputs":{"question":"q"}}`,
	), nd)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad lines: %d %s", resp.StatusCode, out)
	}
	e := decode[v1Error](t, out)
	if len(e.Error.Problems) != 2 || e.Error.Problems[0].Field != "inputs.context" || !strings.Contains(e.Error.Problems[0].Reason, "expected list[str], got a string") ||
		e.Error.Problems[1].Field != "inputs.context" {
		t.Errorf("problems: %s", out)
	}
	b.wantV1ErrorBody(t, "POST", "/v1/batches?program=nope", jsonl(`{"question":"q"}`), nd, http.StatusUnprocessableEntity, "program")

	resp, out = b.do(t, "POST", "/v1/batches?program=two-stage@latest", jsonl(`{"custom_id":"a","inputs":{"question":"q","context":["c"]}}`), nd)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload: %d %s", resp.StatusCode, out)
	}
	bt, err := b.batches.Get(context.Background(), decode[batchView](t, out).ID)
	if err != nil {
		t.Fatal(err)
	}
	if bt.Spec.Program != "two-stage@latest" || bt.Spec.ProgramVersion != v {
		t.Errorf("batch spec: program %q version %q, want two-stage@latest %s", bt.Spec.Program, bt.Spec.ProgramVersion, v)
	}
}

// A pushed qa is what the QA program's requests run, the seed's included:
// they resolve qa like any program, and its question keeps its limits.
func TestPushedQA(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{MaxQuestionChars: 20}})
	file := "name: qa\nstages:\n  - key: predict.predict\n    module: ChainOfThought\n    signature: \"question -> answer, key_concepts, question_type\"\n"
	v := b.push(t, "qa", map[string]any{"file": file}, nil, http.StatusCreated).Version
	j, err := b.store.Get(context.Background(), b.submit(t, "Why?"))
	if err != nil || j.Spec.ProgramVersion != v {
		t.Fatalf("a question after qa was pushed: version %q (%v), want %s", j.Spec.ProgramVersion, err, v)
	}
	got := b.wantV1ErrorBody(t, "POST", "/v1/jobs", map[string]any{"question": strings.Repeat("x", 21)}, nil, http.StatusUnprocessableEntity, "question")
	if !strings.Contains(got.Error.Message, "20") {
		t.Errorf("an over-long question: %q, want MAX_QUESTION_CHARS's 20", got.Error.Message)
	}
}

// Two APIs on one Redis: an alias moved through one changes what new jobs
// submitted to the other run, without a restart (pub/sub, else the
// re-read every second).
func TestAliasMoveReachesAnotherAPI(t *testing.T) {
	t.Parallel()
	a := setup(t, options{})
	other := setup(t, options{db: a.db})
	v1 := a.push(t, "two-stage", twoStagePush(t, "v1"), nil, http.StatusCreated).Version
	v2 := a.push(t, "two-stage", twoStagePush(t, "v2"), nil, http.StatusCreated).Version
	move := func(v string) {
		t.Helper()
		if resp, out := a.do(t, "PUT", "/v1/programs/two-stage/aliases/stable", map[string]string{"version": v}, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("move stable: %d %s", resp.StatusCode, out)
		}
	}
	runs := func() string {
		resp, out := other.do(t, "POST", "/v1/jobs", map[string]any{"program": "two-stage@stable",
			"inputs": map[string]any{"question": "q", "context": []string{"c"}}}, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit: %d %s", resp.StatusCode, out)
		}
		j, err := other.store.Get(context.Background(), decode[submitted](t, out).ID)
		if err != nil {
			t.Fatal(err)
		}
		return j.Spec.ProgramVersion
	}
	move(v1)
	if got := runs(); got != v1 {
		t.Fatalf("stable runs %s, want %s", got, v1)
	}
	move(v2)
	testwait.Until(t, "the other API to run the moved alias", func() bool { return runs() == v2 })
	move(v1) // rolling back is moving it back
	testwait.Until(t, "the other API to run the rolled-back alias", func() bool { return runs() == v1 })
}
