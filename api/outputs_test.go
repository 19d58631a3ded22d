package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"testing"

	"github.com/qaqueue/qaqueue/program"
)

// TestOutputsInSignatureOrder: the program returns its outputs in its
// signature's order (reasoning first), and clients get them in that order:
// in the job's view, in its completed event and on a batch's results line.
func TestOutputsInSignatureOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startGoldenWorker(t)
	var want []string
	for _, f := range program.NewQA().Predictor().Predict.Signature().Outputs() {
		want = append(want, f.Name)
	}

	id := b.submit(t, "In what order do the outputs come?")
	b.waitJob(t, id, "completed")
	_, body := b.do(t, "GET", "/v1/jobs/"+id, nil, nil)
	view := decode[struct {
		Result struct{ Outputs json.RawMessage }
	}](t, body)
	if got := objectKeys(t, view.Result.Outputs); !slices.Equal(got, want) {
		t.Errorf("job view: outputs %v, want %v", got, want)
	}
	var completed json.RawMessage
	for _, f := range b.openSSE(t, "GET", eventsPath(id), nil, nil).rest(t) {
		if f.Event == "completed" {
			completed = json.RawMessage(f.Data)
		}
	}
	event := decode[struct {
		Result struct{ Outputs json.RawMessage }
	}](t, completed)
	if got := objectKeys(t, event.Result.Outputs); !slices.Equal(got, want) {
		t.Errorf("completed event: outputs %v, want %v", got, want)
	}

	v := b.upload(t, jsonl(`{"custom_id":"a","question":"And on a batch's line?"}`), "application/x-ndjson", nil)
	b.waitBatch(t, v.ID, "", "completed")
	line := decode[struct{ Outputs json.RawMessage }](t, b.resultLines(t, v.ID)[0])
	if got := objectKeys(t, line.Outputs); !slices.Equal(got, want) {
		t.Errorf("batch line: outputs %v, want %v", got, want)
	}
}

// TestBatchLineProvenance: a batch's results line reports how its answer
// was produced as a job does, in a provenance object of the job's shape,
// and keeps its flat fields.
func TestBatchLineProvenance(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startGoldenWorker(t)
	id := b.submit(t, "What does a job report?")
	b.waitJob(t, id, "completed")
	_, body := b.do(t, "GET", "/v1/jobs/"+id, nil, nil)
	job := decode[struct {
		Result struct{ Provenance map[string]any }
	}](t, body).Result.Provenance

	v := b.upload(t, jsonl(`{"custom_id":"a","question":"What does a batch item report?"}`), "application/x-ndjson", nil)
	b.waitBatch(t, v.ID, "", "completed")
	line := decode[map[string]any](t, b.resultLines(t, v.ID)[0])
	prov, ok := line["provenance"].(map[string]any)
	if !ok {
		t.Fatalf("line has no provenance object: %v", line)
	}
	if got, want := slices.Sorted(maps.Keys(prov)), slices.Sorted(maps.Keys(job)); !slices.Equal(got, want) {
		t.Errorf("provenance fields %v, want the job's %v", got, want)
	}
	for _, k := range []string{"model", "program_state_sha256"} {
		if prov[k] != job[k] || prov[k] == "" {
			t.Errorf("provenance %s = %v, want the job's %v", k, prov[k], job[k])
		}
	}
	if prov["attempts"] != 1.0 || prov["lm_calls"] != 1.0 || prov["cache_hit"] != false {
		t.Errorf("provenance = %v, want one attempt, one LM call, no cache hit", prov)
	}
	for _, k := range []string{"custom_id", "status", "outputs", "usage", "attempts", "latency_seconds"} {
		if _, ok := line[k]; !ok {
			t.Errorf("line lost its field %s: %v", k, line)
		}
	}
}

// resultLines are the raw lines of a batch's results.
func (b *bundle) resultLines(t *testing.T, id string) [][]byte {
	t.Helper()
	_, out := b.do(t, "GET", "/v1/batches/"+id+"/results", nil, nil)
	var lines [][]byte
	for l := range bytes.Lines(out) {
		if l = bytes.TrimSpace(l); len(l) > 0 {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		t.Fatalf("batch %s has no result lines", id)
	}
	return lines
}

// objectKeys are the keys of a JSON object, in the order they are written.
func objectKeys(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
	}
	return keys
}
