package worker_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
)

// claimsVersion is the version the tests serve testdata/claims under.
const claimsVersion = "c1a1"

// compileProgram compiles testdata/dir/program.yaml.
func compileProgram(t *testing.T, dir string) *programfile.Compiled {
	t.Helper()
	b, err := programfile.Load(filepath.Join("testdata", dir), "program.yaml", 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	c, err := programfile.Compile(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serveClaims makes b's runner serve the built-in qa program and
// testdata/claims as claims@claimsVersion.
func (b *bundle) serveClaims(t *testing.T) {
	t.Helper()
	qa, err := worker.BuiltinQA(program.NewQA())
	if err != nil {
		t.Fatal(err)
	}
	b.runner = worker.NewRunner(worker.StaticPrograms{
		{Name: jobs.ProgramQA}:                   qa,
		{Name: "claims", Version: claimsVersion}: compileProgram(t, "claims"),
	}, b.lc)
}

// claimsWorker is a bundle whose started worker serves testdata/claims
// beside the built-in qa program.
func claimsWorker(t *testing.T) *bundle {
	t.Helper()
	b := setup(t, store.Config{})
	b.serveClaims(t)
	b.startWorker(t, worker.Config{})
	return b
}

// waitCompleted waits for job id to end and fails the test unless it
// completed.
func (b *bundle) waitCompleted(t *testing.T, id string) *jobs.Job {
	t.Helper()
	j := b.waitEnd(t, id)
	if j.Status != jobs.StatusCompleted {
		t.Fatalf("job = %s %+v", j.Status, j.Error)
	}
	return j
}

// claimsJob is a streamed, uncached claims job on quote (the fake LM's
// directives go in the quote, which only the second stage reads).
func claimsJob(quote string) store.SubmitRequest {
	s := jobs.Spec{
		ClientSpec: jobs.ClientSpec{Program: "claims@stable", Inputs: jobs.Inputs{"text": "The sky is blue and grass is green.", "quote": quote}},
		ServerSpec: jobs.ServerSpec{Owner: "o", ProgramVersion: claimsVersion},
	}
	s.Options = jobs.Options{Stream: true, NoCache: true} // no cache: a repeated stage would call the fake LM
	return store.SubmitRequest{Spec: s}
}

// staged is what a job's events say about its stages: each token's and
// reset's stage, and each stage_completed.
type staged struct {
	tokens    map[string]map[string]string // stage → field → text streamed
	completed []jobs.StageCompletedData
	order     []string // event types, with their stage
}

// stagedInOrder reads job id's events and fails the test unless their
// order (see staged) is want.
func (b *bundle) stagedInOrder(t *testing.T, id string, want ...string) staged {
	t.Helper()
	s := readStaged(t, b.events(t, id))
	if diff := cmp.Diff(want, s.order); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	return s
}

func readStaged(t *testing.T, evs []jobs.Event) staged {
	t.Helper()
	s := staged{tokens: map[string]map[string]string{}}
	for _, e := range evs {
		switch e.Type {
		case jobs.EventToken:
			var d jobs.TokenData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			if s.tokens[d.Stage] == nil {
				s.tokens[d.Stage] = map[string]string{}
			}
			s.tokens[d.Stage][d.Field] += d.Content
			if n := len(s.order); n == 0 || s.order[n-1] != "token "+d.Stage {
				s.order = append(s.order, "token "+d.Stage)
			}
		case jobs.EventStageCompleted:
			var d jobs.StageCompletedData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			s.completed = append(s.completed, d)
			s.order = append(s.order, "stage_completed "+d.Stage)
		default:
			s.order = append(s.order, string(e.Type))
		}
	}
	return s
}

// A two-stage typed program runs end to end: the second stage takes the
// first one's claims, the result holds the program's outputs typed and in
// order, usage per stage and in total, and the provenance names the program
// and version. Each stage streams its reasoning (its only str field) under
// its name, then says it completed, before the next stage streams.
func TestTwoStageProgramRuns(t *testing.T) {
	t.Parallel()
	b := claimsWorker(t)
	id := b.submit(t, claimsJob("Sky: blue."))
	r := b.waitCompleted(t, id).Result
	var names []string
	for _, o := range r.Outputs {
		names = append(names, o.Name)
	}
	if diff := cmp.Diff([]string{"claims", "supported", "confidence"}, names); diff != "" {
		t.Fatalf("outputs (-want +got):\n%s", diff)
	}
	claims, _ := r.Outputs.Get("claims")
	supported, _ := r.Outputs.Get("supported")
	confidence, _ := r.Outputs.Get("confidence")
	if _, ok := claims.([]any); !ok {
		t.Errorf("claims = %#v, want a list", claims)
	}
	if _, ok := supported.(bool); !ok {
		t.Errorf("supported = %#v, want a bool", supported)
	}
	// A float goes out in Python's form (json.dumps writes 1.0, not 1).
	if n, ok := confidence.(json.Number); !ok || !strings.ContainsAny(string(n), ".e") {
		t.Errorf("confidence = %#v, want a float as Python writes it", confidence)
	}
	p := r.Provenance
	if p.Program != "claims" || p.ProgramVersion != claimsVersion || p.LMCalls != 2 || p.Attempts != 1 {
		t.Errorf("provenance = %+v, want claims %s, 2 LM calls, 1 attempt", p, claimsVersion)
	}
	if len(r.Stages) != 2 || r.Stages[0].Stage != "extract.predict" || r.Stages[1].Stage != "verify" ||
		r.Stages[0].LMCalls != 1 || r.Stages[1].LMCalls != 1 {
		t.Fatalf("stages = %+v", r.Stages)
	}
	if total, s1, s2 := totalTokens(t, r.Usage), totalTokens(t, r.Stages[0].Usage), totalTokens(t, r.Stages[1].Usage); s1 <= 0 || s2 <= 0 || total != s1+s2 {
		t.Errorf("usage total %d, stages %d + %d", total, s1, s2)
	}

	s := b.stagedInOrder(t, id, "queued", "started", "token extract.predict", "stage_completed extract.predict",
		"token verify", "stage_completed verify", "completed")
	for i, stage := range []string{"extract.predict", "verify"} {
		got := s.completed[i]
		reasoning, _ := got.Outputs.Get("reasoning")
		if streamed := s.tokens[stage]; len(streamed) != 1 || streamed["reasoning"] != reasoning {
			t.Errorf("stage %s streamed %q, want its reasoning %q alone", stage, streamed, reasoning)
		}
	}
	if got, _ := s.completed[0].Outputs.Get("claims"); !cmp.Equal(got, claims) {
		t.Errorf("stage_completed claims %v, result %v", got, claims)
	}
}

func totalTokens(t *testing.T, usage json.RawMessage) int64 {
	t.Helper()
	var u map[string]struct {
		Total int64 `json:"total_tokens"`
	}
	if err := json.Unmarshal(usage, &u); err != nil {
		t.Fatalf("usage %s: %v", usage, err)
	}
	var n int64
	for _, m := range u {
		n += m.Total
	}
	return n
}

// A 429 in the second stage retries the job, and the retry resumes at the
// second stage: the first is not sent to the LM again (the job runs
// uncached, so only its checkpoint can spare it), the result counts every
// call and lists the first stage's usage from its checkpoint.
func TestRetryResumesAtUnfinishedStage(t *testing.T) {
	t.Parallel()
	b := claimsWorker(t)
	id := b.submit(t, claimsJob("Sky: blue. [[fakelm:429,times=1,retry_after=1ms]]"))
	j := b.waitCompleted(t, id)
	if n := b.lm.RequestsTo("/v1/chat/completions"); n != 3 {
		t.Fatalf("the fake LM got %d requests, want 3: extract once, verify twice", n)
	}
	p := j.Result.Provenance
	if p.Attempts != 2 || p.LMCalls != 3 {
		t.Fatalf("provenance = %+v, want 2 attempts, 3 LM calls", p)
	}
	if st := j.Result.Stages; len(st) != 2 || st[0].LMCalls != 1 || totalTokens(t, st[0].Usage) <= 0 {
		t.Fatalf("stages = %+v, want the first stage's call and usage from its checkpoint", st)
	}
	b.stagedInOrder(t, id, "queued", "started", "token extract.predict", "stage_completed extract.predict",
		"retrying", "started", "token verify", "stage_completed verify", "completed")
}

// A stage that does not parse, in the chat form and after the JSON
// fallback, fails the job naming the stage.
func TestStageParseErrorNamesTheStage(t *testing.T) {
	t.Parallel()
	b := claimsWorker(t)
	id := b.submit(t, claimsJob("[[fakelm:garbage]]"))
	j := b.waitEnd(t, id)
	if j.Status != jobs.StatusFailed || j.Error.Code != "parse_error" || !strings.HasPrefix(j.Error.Message, "stage verify: ") {
		t.Fatalf("job = %s %+v, want a parse_error naming stage verify", j.Status, j.Error)
	}
}

// A job whose program version is no longer stored fails at once, without
// calling the LM; a program the worker does not know fails at once too.
func TestProgramVersionGoneFailsAtOnce(t *testing.T) {
	t.Parallel()
	b := claimsWorker(t)
	gone := claimsJob("q")
	gone.Spec.ProgramVersion = "pruned"
	unknown := claimsJob("q")
	unknown.Spec.Program = "nosuch"
	for _, c := range []struct {
		req  store.SubmitRequest
		code string
	}{{gone, jobs.CodeProgramVersionGone}, {unknown, "invalid_payload"}} {
		j := b.waitEnd(t, b.submit(t, c.req))
		if j.Status != jobs.StatusFailed || j.Error.Code != c.code || j.Attempts != 1 {
			t.Errorf("job %s = %s after %d attempts, %+v; want failed at once with %s", c.req.Spec.Program, j.Status, j.Attempts, j.Error, c.code)
		}
	}
	if n := b.lm.RequestsTo("/v1/chat/completions"); n != 0 {
		t.Fatalf("the fake LM got %d requests", n)
	}
}

// The built-in qa program through a Programs source is the single-stage
// program it was: its token events name no stage, no stage_completed is
// sent, no checkpoint is written and the result lists no stages.
func TestSingleStageWritesNoCheckpoint(t *testing.T) {
	t.Parallel()
	b := claimsWorker(t)
	id := b.submit(t, ask("Why is the sky blue?", "o", jobs.Options{Stream: true}))
	j := b.waitEnd(t, id)
	if j.Status != jobs.StatusCompleted || j.Result.Stages != nil || j.Result.Provenance.Program != jobs.ProgramQA || j.Result.Provenance.ProgramVersion != "" {
		t.Fatalf("job = %s %+v", j.Status, j.Result)
	}
	b.stagedInOrder(t, id, "queued", "started", "token ", "completed")
	fields, err := b.db.Client.HKeys(context.Background(), jobs.JobKey(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if strings.HasPrefix(f, "checkpoint") {
			t.Fatalf("a single-stage job's record has %s", f)
		}
	}
}

// A worker killed after the first stage (its attempt started and
// checkpointed the stage, then nothing more) leaves a job the next attempt
// resumes at the second stage: the LM is asked once, for the second stage,
// which takes the claims from the checkpoint.
func TestResumeFromKilledWorkersCheckpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	b.serveClaims(t)
	ctx := context.Background()
	id := b.submit(t, claimsJob("Sky: blue."))
	killed, out, err := b.store.Start(ctx, id, "killed", 0)
	if err != nil || out != store.Started {
		t.Fatalf("start: %v %v", out, err)
	}
	cp := &jobs.Checkpoint{
		StageUsage: jobs.StageUsage{Stage: "extract.predict", Usage: json.RawMessage(`{"openai/gpt-4o-mini":{"total_tokens":11}}`), LMCalls: 1},
		Outputs:    jobs.Outputs{{Name: "reasoning", Value: "Read it."}, {Name: "claims", Value: []any{"checkpointed claim", "another"}}},
		Values:     json.RawMessage(`{"reasoning": "Read it.", "claims": ["checkpointed claim", "another"]}`),
	}
	if err := killed.Checkpoint(ctx, 0, cp); err != nil {
		t.Fatal(err)
	}
	b.startWorker(t, worker.Config{})
	j := b.waitCompleted(t, id)
	if n := b.lm.RequestsTo("/v1/chat/completions"); n != 1 {
		t.Fatalf("the fake LM got %d requests, want 1 (the second stage)", n)
	}
	if !strings.Contains(string(b.lm.LastRequest()), `checkpointed claim`) {
		t.Fatalf("the second stage was not given the checkpoint's claims: %s", b.lm.LastRequest())
	}
	if claims, _ := j.Result.Outputs.Get("claims"); !cmp.Equal(claims, []any{"checkpointed claim", "another"}) {
		t.Fatalf("claims = %v, want the checkpoint's", claims)
	}
	p := j.Result.Provenance
	if p.Attempts != 2 || p.LMCalls != 2 {
		t.Fatalf("provenance = %+v, want 2 attempts, 2 LM calls (the checkpoint's and the second stage's)", p)
	}
	if total := totalTokens(t, j.Result.Usage); total <= 11 || totalTokens(t, j.Result.Stages[0].Usage) != 11 {
		t.Fatalf("usage %s, stages %+v: want the checkpoint's 11 tokens in the total", j.Result.Usage, j.Result.Stages)
	}
}

// A resumed stage hands the next one its outputs as the program returned
// them: a float 1.0 from the checkpoint renders as 1.0 (Python's str), not
// as the integer the result's JSON reads back as.
func TestResumedOutputsKeepTheirTypes(t *testing.T) {
	t.Parallel()
	const yaml = `name: floats
stages:
  - key: measure
    module: Predict
    signature: "q -> x: float"
  - key: judge
    module: Predict
    signature: "x: float -> verdict"
`
	f, err := programfile.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	c, err := programfile.Compile(&programfile.Bundle{File: f, YAML: []byte(yaml)})
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, store.Config{})
	lm := &recordingLM{LM: b.lc}
	runner := worker.NewRunner(worker.StaticPrograms{{Name: "floats", Version: "v"}: c}, lm)
	done := jobs.Checkpoint{
		StageUsage: jobs.StageUsage{Stage: "measure", Usage: json.RawMessage(`{}`), LMCalls: 1},
		Outputs:    jobs.Outputs{{Name: "x", Value: 1.0}},
		Values:     json.RawMessage(`{"x": 1.0}`),
	}
	res, err := runner.Run(context.Background(), jobs.Inputs{"q": "how much?"},
		worker.RunOptions{Program: "floats", ProgramVersion: "v", Done: []jobs.Checkpoint{done}})
	if err != nil {
		t.Fatal(err)
	}
	if len(lm.sent) != 1 {
		t.Fatalf("%d LM calls, want 1 (judge)", len(lm.sent))
	}
	if user := lm.sent[0][len(lm.sent[0])-1].Content; !strings.Contains(user, "[[ ## x ## ]]\n1.0\n") {
		t.Fatalf("judge's prompt:\n%s\nwant x rendered 1.0", user)
	}
	if x, _ := res.Outputs.Get("x"); x != 1.0 {
		t.Fatalf("x = %#v", x)
	}
}
