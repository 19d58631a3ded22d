package api_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/pricing"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/sse from this run")

// TestStreamsGolden records what clients of the event streams receive, end
// to end (the API and the real worker running the QA program on the fake
// LM), and compares it byte for byte with testdata/sse, written by the code
// as it was before the events became Go types. Only what differs from run to
// run is normalized: ids, latencies, heartbeats, and where the worker's
// coalescer cut the tokens (consecutive token frames are joined).
func TestStreamsGolden(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startGoldenWorker(t)
	ctx := context.Background()

	t.Run("job_completed", func(t *testing.T) {
		id := b.submit(t, "What is the capital of France?")
		b.waitJob(t, id, "completed")
		checkGolden(t, "job_completed", b.rawStream(t, "GET", eventsPath(id), nil), id)
	})
	t.Run("job_failed", func(t *testing.T) {
		id := b.submit(t, "Why is this refused? [[fakelm:400]]")
		b.waitJob(t, id, "failed")
		checkGolden(t, "job_failed", b.rawStream(t, "GET", eventsPath(id), nil), id)
	})
	t.Run("job_cancelled", func(t *testing.T) {
		id := b.submit(t, "What takes forever? [[fakelm:stall]]")
		testwait.Until(t, "the job to start", func() bool { return b.jobStatus(t, id) == "running" })
		if _, err := b.client.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "job_cancelled", b.rawStream(t, "GET", eventsPath(id), nil), id)
	})
	t.Run("predict_stream", func(t *testing.T) {
		raw := b.rawStream(t, "POST", "/predict/stream", map[string]any{"question": "How do tides work?"})
		checkGolden(t, "predict_stream", raw, b.lastJob(t))
	})
	t.Run("predict_stream_failed", func(t *testing.T) {
		raw := b.rawStream(t, "POST", "/predict/stream", map[string]any{"question": "Who refuses? [[fakelm:400]]"})
		checkGolden(t, "predict_stream_failed", raw, b.lastJob(t))
	})
	t.Run("job_stages_completed", func(t *testing.T) {
		// A two-stage program's job (submitted to the store: the API
		// resolves programs once the registry lands): tokens name their
		// stage, each stage says it completed, the result lists the stages.
		spec := jobs.Spec{
			ClientSpec: jobs.ClientSpec{Program: "claims", Inputs: jobs.Inputs{"text": "The sky is blue.", "quote": "Sky: blue."}},
			ServerSpec: jobs.ServerSpec{ProgramVersion: "v1"},
		}
		spec.Options.Stream = true
		s, err := b.client.Submit(ctx, store.SubmitRequest{Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		b.waitJob(t, s.Job.ID, "completed")
		checkGolden(t, "job_stages_completed", b.rawStream(t, "GET", eventsPath(s.Job.ID), nil), s.Job.ID)
	})
	t.Run("batch_completed", func(t *testing.T) {
		v := b.upload(t, jsonl(`{"custom_id":"a","question":"What is one?"}`, `{"custom_id":"b","question":"What is two?"}`), "application/x-ndjson", nil)
		b.waitBatch(t, v.ID, "", "completed")
		checkGolden(t, "batch_completed", b.rawStream(t, "GET", "/v1/batches/"+v.ID+"/events", nil), v.ID)
	})
}

// startGoldenWorker runs the real worker with the QA program on the fake LM,
// batches included. Progress events are throttled to one an hour, so a
// batch's stream holds its first and its last event only.
func (b *bundle) startGoldenWorker(t *testing.T) {
	t.Helper()
	run := worker.NewRunner(worker.StaticPrograms{
		{Name: jobs.ProgramQA}:          builtinQA(t),
		{Name: "claims", Version: "v1"}: compileClaims(t),
	}, b.fakeQARunner(t, 30*time.Second).LM())
	bs, err := batches.NewStore(b.store, batches.Config{ProgressInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b.runWorker(t, worker.Config{Concurrency: 4, BatchConcurrency: 2, ShutdownTimeout: 2 * time.Second, ID: "golden"},
		worker.Deps{Runner: run, Batches: bs, Prices: pricing.Default()}) // results show their costs
}

// claimsFile is a two-stage typed program: extract claims, then judge them.
const claimsFile = `name: claims
stages:
  - key: extract.predict
    module: ChainOfThought
    signature: "text -> claims: list[str]"
  - key: verify
    module: ChainOfThought
    signature: "claims: list[str], quote -> supported: bool, confidence: float"
outputs: [claims, supported, confidence]
`

func compileClaims(t *testing.T) *programfile.Compiled {
	t.Helper()
	f, err := programfile.Parse([]byte(claimsFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := programfile.Compile(&programfile.Bundle{File: f, YAML: []byte(claimsFile)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func builtinQA(t *testing.T) *programfile.Compiled {
	t.Helper()
	c, err := worker.BuiltinQA(program.NewQA())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitJob long-polls job id until it has status.
func (b *bundle) waitJob(t *testing.T, id, status string) {
	t.Helper()
	testwait.Until(t, "job "+id+" to be "+status, func() bool {
		_, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait=5s", nil, nil)
		return decode[jobBody](t, body).Status == status
	})
}

// lastJob is the id of the newest job in the test's database.
func (b *bundle) lastJob(t *testing.T) string {
	t.Helper()
	keys, err := b.db.Client.Keys(context.Background(), "qa:job:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var id string
	var newest time.Time
	for _, k := range keys {
		if strings.HasSuffix(k, ":events") {
			continue
		}
		j, err := b.store.Get(context.Background(), strings.TrimPrefix(k, "qa:job:"))
		if err != nil {
			t.Fatal(err)
		}
		if j.CreatedAt.After(newest) || id == "" {
			id, newest = j.ID, j.CreatedAt
		}
	}
	return id
}

// rawStream reads a stream's body to its end.
func (b *bundle) rawStream(t *testing.T, method, path string, body any) string {
	t.Helper()
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = strings.NewReader(string(j))
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %v\n%s", method, path, resp.StatusCode, err, out)
	}
	return string(out)
}

var (
	latencyRE = regexp.MustCompile(`"latency_seconds":[0-9.e+-]+`)
	idLineRE  = regexp.MustCompile(`(?m)^id: (.*)$`)
)

// normalizeStream makes a stream's bytes comparable across runs.
func normalizeStream(raw, ownerID string) string {
	var out []string
	var tok *goldenToken
	flush := func() {
		if tok != nil {
			out = append(out, tok.block())
			tok = nil
		}
	}
	for _, block := range strings.SplitAfter(raw, "\n\n") {
		if block == "" || strings.HasPrefix(block, ":") {
			continue // a heartbeat
		}
		if next, ok := parseGoldenToken(block); ok {
			if tok != nil && tok.joins(next) {
				tok.Content += next.Content
				continue
			}
			flush()
			tok = &next
			continue
		}
		flush()
		out = append(out, block)
	}
	flush()
	s := strings.Join(out, "")
	s = strings.ReplaceAll(s, ownerID, "<id>")
	s = latencyRE.ReplaceAllString(s, `"latency_seconds":0`)
	ids := map[string]string{}
	return idLineRE.ReplaceAllStringFunc(s, func(line string) string {
		id := strings.TrimPrefix(line, "id: ")
		if _, ok := ids[id]; !ok {
			ids[id] = fmt.Sprintf("<event %d>", len(ids)+1)
		}
		return "id: " + ids[id]
	})
}

// goldenToken is a token frame of either stream: /v1's (id, event: token,
// attempt) or the seed's (data only, type token).
type goldenToken struct {
	seed    bool
	id      string
	Type    string `json:"type,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	Stage   string `json:"stage,omitempty"`
	Field   string `json:"field"`
	Content string `json:"content"`
}

func parseGoldenToken(block string) (goldenToken, bool) {
	var tk goldenToken
	var data string
	for _, line := range strings.Split(strings.TrimSuffix(block, "\n\n"), "\n") {
		name, value, _ := strings.Cut(line, ": ")
		switch name {
		case "id":
			tk.id = value
		case "event":
			if value != "token" {
				return tk, false
			}
		case "data":
			data = value
		}
	}
	if err := json.Unmarshal([]byte(data), &tk); err != nil {
		return tk, false
	}
	tk.seed = tk.id == ""
	if tk.seed && tk.Type != "token" || !tk.seed && tk.Attempt == 0 {
		return tk, false
	}
	return tk, true
}

func (tk goldenToken) joins(next goldenToken) bool {
	return tk.seed == next.seed && tk.Attempt == next.Attempt && tk.Stage == next.Stage && tk.Field == next.Field
}

func (tk goldenToken) block() string {
	if tk.seed {
		b, _ := json.Marshal(struct {
			Type    string `json:"type"`
			Field   string `json:"field"`
			Content string `json:"content"`
		}{tk.Type, tk.Field, tk.Content})
		return "data: " + string(b) + "\n\n"
	}
	b, _ := json.Marshal(struct {
		Attempt int    `json:"attempt"`
		Stage   string `json:"stage,omitempty"`
		Field   string `json:"field"`
		Content string `json:"content"`
	}{tk.Attempt, tk.Stage, tk.Field, tk.Content})
	return "id: " + tk.id + "\nevent: token\ndata: " + string(b) + "\n\n"
}

// checkGolden compares a stream with testdata/sse/name.txt (-update writes
// it).
func checkGolden(t *testing.T, name, raw, ownerID string) {
	t.Helper()
	got := normalizeStream(raw, ownerID)
	path := filepath.Join("testdata", "sse", name+".txt")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s\ngot:\n%s\nwant:\n%s\nraw:\n%s", name, path, got, want, raw)
	}
}
