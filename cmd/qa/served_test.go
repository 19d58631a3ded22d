package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
)

// claimsInputs are an article and the transcript it quotes.
const claimsInputs = `{"article": "The city planted 12,000 trees last year, the mayor said.", "transcript": "We planted twelve thousand trees in the last twelve months."}`

// TestClaimsServedEndToEnd serves examples/claims as docs/programs.md
// says: `qa programs push`, a job by name with its inputs (polled and
// streamed), a batch with ?program=, a bad input refused, and a second
// version swapped in by moving an alias, with the first job keeping its
// version. The API, the worker and the CLI are the real ones, on a real
// redis-server and the fake LM.
func TestClaimsServedEndToEnd(t *testing.T) {
	t.Parallel()
	e, stdout, stderr, base := clientEnvWith(t, nil)
	ctx := context.Background()
	qa := func(args ...string) string {
		t.Helper()
		stdout.Reset()
		stderr.Reset()
		if code := run(ctx, e, args); code != 0 {
			t.Fatalf("qa %v: exit %d, %s", args, code, stderr)
		}
		return stdout.String()
	}
	out := qa("programs", "push", claimsFile)
	v1, ok := strings.CutPrefix(strings.TrimSpace(out), "claims@latest = ")
	if !ok || len(v1) < 64 {
		t.Fatalf("push printed %q", out)
	}
	v1 = v1[:64]
	qa("programs", "alias", "claims@stable", v1[:12])

	// A job by name: the outputs in the file's order, as JSON values of
	// their types; usage per stage; the version in the spec and the
	// provenance.
	job := submitJob(t, base, `{"program": "claims@stable", "inputs": `+claimsInputs+`}`)
	res := waitJob(t, base, job)
	if res.Program != "claims@stable" || res.ProgramVersion != v1 || res.Inputs["transcript"] == nil {
		t.Errorf("job: program %q version %q inputs %v, want claims@stable %s and its inputs", res.Program, res.ProgramVersion, res.Inputs, v1)
	}
	r := res.Result
	var names []string
	for _, o := range r.Outputs {
		names = append(names, o.Name)
	}
	if strings.Join(names, ",") != "claims,topic,supported,confidence" {
		t.Errorf("outputs %v, want claims.yaml's outputs in order", names)
	}
	claims, _ := r.Outputs.Get("claims")
	supported, _ := r.Outputs.Get("supported")
	confidence, _ := r.Outputs.Get("confidence")
	if l, ok := claims.([]any); !ok || len(l) == 0 {
		t.Errorf("claims = %#v, want a non-empty list", claims)
	}
	if _, ok := supported.(bool); !ok {
		t.Errorf("supported = %#v, want a bool", supported)
	}
	if n, ok := confidence.(json.Number); !ok || !strings.ContainsAny(string(n), ".e") {
		t.Errorf("confidence = %#v, want a float", confidence)
	}
	p := r.Provenance
	if p.Program != "claims" || p.ProgramVersion != v1 || p.LMCalls != 2 {
		t.Errorf("provenance %+v, want claims %s with 2 LM calls", p, v1)
	}
	if len(r.Stages) != 2 || r.Stages[0].Stage != "extract.predict" || r.Stages[1].Stage != "verify" {
		t.Errorf("stages %+v", r.Stages)
	}

	// Streamed: each stage's str fields as tokens naming the stage, then
	// its stage_completed, then the result.
	events := streamJob(t, base, `{"program": "claims", "inputs": `+claimsInputs+`, "options": {"stream": true, "no_cache": true}}`)
	var order []string
	for _, ev := range events {
		switch ev.Event {
		case "token":
			var d jobs.TokenData
			if err := json.Unmarshal([]byte(ev.Data), &d); err != nil || d.Stage == "" {
				t.Fatalf("token %s: %v, want its stage named", ev.Data, err)
			}
			if len(order) == 0 || order[len(order)-1] != "token "+d.Stage {
				order = append(order, "token "+d.Stage)
			}
		case "stage_completed":
			var d struct{ Stage string }
			if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
				t.Fatal(err)
			}
			order = append(order, "stage_completed "+d.Stage)
		case "completed":
			order = append(order, "completed")
		}
	}
	want := "token extract.predict,stage_completed extract.predict,stage_completed verify,completed"
	if strings.Join(order, ",") != want {
		t.Errorf("events %v,\nwant %s (verify has no str output to stream)", order, want)
	}

	// A batch of the program, lines of inputs.
	lines := `{"custom_id": "a", "inputs": ` + claimsInputs + `}` + "\n" + `{"custom_id": "b", "inputs": ` + claimsInputs + `}` + "\n"
	status, body := httpDo(t, "POST", base+"/v1/batches?program=claims", "application/x-ndjson", lines)
	var batch struct{ ID string }
	if err := json.Unmarshal(body, &batch); status != 202 || err != nil || batch.ID == "" {
		t.Fatalf("POST /v1/batches?program=claims: %d %s", status, body)
	}
	status, body = httpDo(t, "GET", base+"/v1/batches/"+batch.ID+"/results?wait=true", "", "")
	if status != 200 || strings.Count(string(body), `"supported":`) != 2 || !strings.Contains(string(body), `"program_version":"`+v1+`"`) {
		t.Fatalf("batch results: %d %s", status, body)
	}

	// A wrong type is refused before anything is queued, naming the input.
	status, body = httpDo(t, "POST", base+"/v1/jobs", "application/json", `{"program": "claims", "inputs": {"article": ["a list"], "transcript": "t"}}`)
	if status != 422 || !strings.Contains(string(body), `"field":"inputs.article"`) || !strings.Contains(string(body), "expected str, got an array") {
		t.Errorf("a list for a str input: %d %s", status, body)
	}

	// A second version: new instructions in the state. Moving stable to it
	// changes what new jobs run at once on this API; the first job's
	// record still says v1.
	dir := t.TempDir()
	for _, f := range []string{"claims.yaml", "signatures.py", "optimized.json"} {
		b, err := os.ReadFile(filepath.Join(examplesDir, "claims", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "optimized.json" {
			b = bytes.Replace(b, []byte("Decide whether the quote supports"), []byte("Judge whether the quote supports"), 1)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out = qa("programs", "push", filepath.Join(dir, "claims.yaml"))
	v2, _ := strings.CutPrefix(strings.TrimSpace(out), "claims@latest = ")
	if len(v2) < 64 || v2[:64] == v1 {
		t.Fatalf("second push printed %q", out)
	}
	v2 = v2[:64]
	qa("programs", "alias", "claims@stable", v2[:12])
	if got := waitJob(t, base, submitJob(t, base, `{"program": "claims@stable", "inputs": `+claimsInputs+`}`)); got.Result.Provenance.ProgramVersion != v2 {
		t.Errorf("after the move: ran %s, want %s", got.Result.Provenance.ProgramVersion, v2)
	}
	if again := waitJob(t, base, job); again.Result.Provenance.ProgramVersion != v1 {
		t.Errorf("the first job now says %s, want %s", again.Result.Provenance.ProgramVersion, v1)
	}
}

func httpDo(t *testing.T, method, url, contentType, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func submitJob(t *testing.T, base, body string) string {
	t.Helper()
	status, b := httpDo(t, "POST", base+"/v1/jobs", "application/json", body)
	var sub struct{ ID string }
	if err := json.Unmarshal(b, &sub); status != 202 || err != nil || sub.ID == "" {
		t.Fatalf("POST /v1/jobs %s: %d %s", body, status, b)
	}
	return sub.ID
}

// servedJob is what GET /v1/jobs/{id} shows of a job.
type servedJob struct {
	Status         jobs.Status
	Program        string
	ProgramVersion string `json:"program_version"`
	Inputs         map[string]any
	Result         *jobs.Result
}

// waitJob long-polls job id until it completes.
func waitJob(t *testing.T, base, id string) *servedJob {
	t.Helper()
	status, b := httpDo(t, "GET", base+"/v1/jobs/"+id+"?wait=60s", "", "")
	var j servedJob
	if err := json.Unmarshal(b, &j); status != 200 || err != nil || j.Status != jobs.StatusCompleted || j.Result == nil {
		t.Fatalf("job %s: %d %s", id, status, b)
	}
	return &j
}

// streamJob submits body and reads the job's event stream to its end.
func streamJob(t *testing.T, base, body string) []sseEvent {
	t.Helper()
	id := submitJob(t, base, body)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/jobs/"+id+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var events []sseEvent
	err = readSSE(resp.Body, func(ev sseEvent) bool {
		events = append(events, ev)
		return ev.Event != "completed" && ev.Event != "failed"
	})
	if n := len(events); err != nil || n == 0 || events[n-1].Event != "completed" {
		t.Fatalf("the stream of %s: %v, %v", id, events, err)
	}
	return events
}
