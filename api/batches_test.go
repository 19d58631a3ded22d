package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/worker"
)

// batchView is the part of a batch object the tests read.
type batchView struct {
	ID            string           `json:"id"`
	Status        string           `json:"status"`
	RequestCounts jobs.BatchCounts `json:"request_counts"`
	Links         map[string]string
	Mode          string                 `json:"mode"`
	Provider      *jobs.ProviderProgress `json:"provider"`
	Cost          *jobs.BatchCost        `json:"cost"`
}

// startBatchWorker runs a real worker with batch handlers on the bundle's
// Redis; only the program is scripted.
func (b *bundle) startBatchWorker(t *testing.T, run scriptedRunner, cfg worker.Config) {
	t.Helper()
	bs, err := batches.NewStore(b.store, batches.Config{ProgressInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	if cfg.BatchConcurrency == 0 {
		cfg.BatchConcurrency = 4
	}
	cfg.ShutdownTimeout, cfg.ID = 2*time.Second, "batch-e2e"
	b.runWorker(t, cfg, worker.Deps{Runner: run, Batches: bs})
}

// echoRunner answers every question at once with the question echoed.
func echoRunner(_ context.Context, q string, _ worker.RunOptions) (*worker.RunResult, error) {
	return &worker.RunResult{Outputs: jobs.Outputs{{Name: "answer", Value: "A: " + q}}, Usage: json.RawMessage(`{}`)}, nil
}

func jsonl(items ...string) string { return strings.Join(items, "\n") + "\n" }

func (b *bundle) upload(t *testing.T, body, contentType string, hdr http.Header) batchView {
	t.Helper()
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("Content-Type", contentType)
	resp, out := b.do(t, "POST", "/v1/batches", body, hdr)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload: %d %s", resp.StatusCode, out)
	}
	v := decode[batchView](t, out)
	if loc := resp.Header.Get("Location"); loc != "/v1/batches/"+v.ID {
		t.Errorf("Location = %q", loc)
	}
	return v
}

// batch reads batch id with key ("" for none).
func (b *bundle) batch(t *testing.T, id, key string) batchView {
	t.Helper()
	var hdr http.Header
	if key != "" {
		hdr = bearer(key)
	}
	resp, out := b.do(t, "GET", "/v1/batches/"+id, nil, hdr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get batch: %d %s", resp.StatusCode, out)
	}
	return decode[batchView](t, out)
}

// waitBatch polls batch id with key ("" for none) until it reaches status.
func (b *bundle) waitBatch(t *testing.T, id, key, status string) batchView {
	t.Helper()
	var v batchView
	testwait.Until(t, "batch "+id+" to reach "+status, func() bool {
		v = b.batch(t, id, key)
		return v.Status == status
	})
	return v
}

type resultLine struct {
	CustomID string         `json:"custom_id"`
	Status   string         `json:"status"`
	Outputs  map[string]any `json:"outputs"`
	Error    *jobs.Error    `json:"error"`
}

func (b *bundle) results(t *testing.T, id, query string) []resultLine {
	t.Helper()
	resp, out := b.do(t, "GET", "/v1/batches/"+id+"/results"+query, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("results: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), out)
	}
	var lines []resultLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue // a heartbeat
		}
		lines = append(lines, decode[resultLine](t, sc.Bytes()))
	}
	return lines
}

func customIDs(lines []resultLine) string {
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = l.CustomID
	}
	return strings.Join(ids, ",")
}

func TestBatchUploadJSONLAndArray(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startBatchWorker(t, echoRunner, worker.Config{})
	for name, up := range map[string]struct{ body, ct string }{
		"jsonl": {jsonl(`{"custom_id":"a","question":"one?"}`, ``, `{"question":"two?"}`, `{"custom_id":"c","question":"three?"}`), "application/x-ndjson"},
		"array": {`[{"custom_id":"a","question":"one?"}, {"question":"two?"},` + "\n" + `{"custom_id":"c","question":"three?"}]`, "application/json"},
	} {
		t.Run(name, func(t *testing.T) {
			v := b.upload(t, up.body, up.ct, nil)
			if !strings.HasPrefix(v.ID, "batch_") || v.RequestCounts.Total != 3 || v.Status != "in_progress" {
				t.Fatalf("batch = %+v", v)
			}
			end := b.waitBatch(t, v.ID, "", "completed")
			if end.RequestCounts != (jobs.BatchCounts{Total: 3, Completed: 3}) {
				t.Fatalf("counts = %+v", end.RequestCounts)
			}
			lines := b.results(t, v.ID, "")
			// custom_id defaults to the line (JSONL) or item number (array).
			want := map[string]string{"jsonl": "a,3,c", "array": "a,2,c"}[name]
			if got := customIDs(lines); got != want {
				t.Fatalf("custom_ids = %s, want %s", got, want)
			}
			if lines[1].Status != "completed" || lines[1].Outputs["answer"] != "A: two?" {
				t.Fatalf("line 2 = %+v", lines[1])
			}
		})
	}
}

func TestBatchValidationErrorsListEveryLine(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{MaxQuestionChars: 10}})
	body := jsonl(
		`{"custom_id":"a","question":"fine"}`,
		`{"question": "broken"`,
		`{"custom_id":"b"}`,
		`{"custom_id":"c","question":"this one is far too long"}`,
		`{"custom_id":"a","question":"dup"}`,
		`["not","an","object"]`,
		`{"question":""}`,
		`{"question":"ok","extra":1}`,
	)
	resp, out := b.do(t, "POST", "/v1/batches", body, http.Header{"Content-Type": {"application/x-ndjson"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("status %d %s", resp.StatusCode, out)
	}
	e := decode[v1Error](t, out)
	var got []string
	for _, p := range e.Error.Problems {
		got = append(got, fmt.Sprintf("%d:%s", p.Line, p.Field))
	}
	want := "2:,3:question,4:question,5:custom_id,6:,7:question,8:extra"
	if strings.Join(got, ",") != want || e.Error.Code != "validation_error" {
		t.Fatalf("problems = %s (%s), want %s", strings.Join(got, ","), out, want)
	}
	if !strings.Contains(string(out), "MAX_QUESTION_CHARS") || !strings.Contains(string(out), "duplicate custom_id") {
		t.Errorf("reasons do not name the limit or the duplicate: %s", out)
	}
	// Nothing was kept.
	keys, err := b.db.Client.Keys(context.Background(), "qa:batch*").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys after a refused upload: %v %v", keys, err)
	}
	// A JSON array reports item numbers; a syntax error stops there.
	resp, out = b.do(t, "POST", "/v1/batches", `[{"question":"a"},{"question":5},{"question":`, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(out), `"line":2,"field":"question"`) || !strings.Contains(string(out), `"line":3`) {
		t.Fatalf("array: %d %s", resp.StatusCode, out)
	}
}

func TestBatchLimits(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{BatchMaxItems: 3, BatchMaxBytes: 200}})
	hdr := http.Header{"Content-Type": {"application/x-ndjson"}}
	resp, out := b.do(t, "POST", "/v1/batches", jsonl(`{"question":"1"}`, `{"question":"2"}`, `{"question":"3"}`, `{"question":"4"}`), hdr)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(out), "BATCH_MAX_ITEMS") {
		t.Fatalf("items: %d %s", resp.StatusCode, out)
	}
	resp, out = b.do(t, "POST", "/v1/batches", jsonl(`{"question":"`+strings.Repeat("x", 250)+`"}`), hdr)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(out), "BATCH_MAX_BYTES") {
		t.Fatalf("bytes: %d %s", resp.StatusCode, out)
	}
	// Without a Content-Length the limit is found while reading.
	req, _ := http.NewRequest("POST", b.url+"/v1/batches", struct{ *strings.Reader }{strings.NewReader(jsonl(`{"question":"` + strings.Repeat("y", 250) + `"}`))})
	req.ContentLength = -1
	r, err := b.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: %d", r.StatusCode)
	}
}

// gate holds items whose question starts with "slow" until opened.
type gate struct {
	open    chan struct{}
	started atomic.Int64
	ran     atomic.Int64
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) run(ctx context.Context, q string, o worker.RunOptions) (*worker.RunResult, error) {
	g.ran.Add(1)
	if strings.HasPrefix(q, "slow") {
		g.started.Add(1)
		select {
		case <-g.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return echoRunner(ctx, q, o)
}

func TestBatchResultsInOrderWhileRunningAndAtTheEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	g := newGate()
	b.startBatchWorker(t, g.run, worker.Config{BatchConcurrency: 4})
	var lines []string
	for i := range 40 {
		q := fmt.Sprintf("q%d", i)
		if i == 5 {
			q = "slow " + q
		}
		lines = append(lines, fmt.Sprintf(`{"custom_id":"id%02d","question":%q}`, i, q))
	}
	v := b.upload(t, jsonl(lines...), "application/x-ndjson", nil)
	// Follow from the start in another request.
	followed := make(chan []resultLine, 1)
	go func() { followed <- b.results(t, v.ID, "?wait=true") }()
	testwait.Until(t, "39 items done", func() bool { return b.batch(t, v.ID, "").RequestCounts.Completed == 39 })
	partial := b.results(t, v.ID, "")
	if len(partial) != 39 || partial[4].CustomID != "id04" || partial[5].CustomID != "id06" {
		t.Fatalf("partial results: %d lines, %s", len(partial), customIDs(partial))
	}
	close(g.open)
	b.waitBatch(t, v.ID, "", "completed")
	var want []string
	for i := range 40 {
		want = append(want, fmt.Sprintf("id%02d", i))
	}
	if got := customIDs(b.results(t, v.ID, "")); got != strings.Join(want, ",") {
		t.Fatalf("final order: %s", got)
	}
	select {
	case f := <-followed:
		if got := customIDs(f); got != strings.Join(want, ",") {
			t.Fatalf("followed order: %s", got)
		}
	case <-time.After(patience):
		t.Fatal("?wait=true did not end with the batch")
	}
}

func TestBatchCancelMidwayKeepsFinishedAndRunsNothingElse(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	g := newGate()
	b.startBatchWorker(t, g.run, worker.Config{BatchConcurrency: 2})
	var lines []string
	for i := range 200 {
		q := fmt.Sprintf("q%d", i)
		if i >= 10 {
			q = "slow " + q
		}
		lines = append(lines, fmt.Sprintf(`{"question":%q}`, q))
	}
	v := b.upload(t, jsonl(lines...), "application/x-ndjson", nil)
	testwait.Until(t, "both slots held by slow items", func() bool { return g.started.Load() == 2 })
	resp, out := b.do(t, "POST", "/v1/batches/"+v.ID+"/cancel", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cancel: %d %s", resp.StatusCode, out)
	}
	end := b.waitBatch(t, v.ID, "", "cancelled")
	ran := g.ran.Load()
	// Items are enqueued a few at a time in parallel, so how many quick ones
	// ran before two slow ones took both slots varies; the rest never ran.
	done := end.RequestCounts.Completed
	if done > 10 || end.RequestCounts.Cancelled != 200-done || end.RequestCounts.Failed != 0 {
		t.Fatalf("counts = %+v", end.RequestCounts)
	}
	if ran != int64(done)+2 {
		t.Fatalf("runner calls = %d, want %d (%d done, 2 cancelled mid-run)", ran, done+2, done)
	}
	res := b.results(t, v.ID, "")
	kept := 0
	for _, r := range res {
		if r.Status == "completed" {
			kept++
		}
	}
	if kept != done {
		t.Fatalf("kept results: %d completed of %d lines, want %d", kept, len(res), done)
	}
	// Only the items that started keep their inputs (a failed one may be
	// retried); the rest were freed by the cancel.
	if n := b.db.Client.HLen(context.Background(), jobs.BatchItemsKey(v.ID)).Val(); n != int64(done)+2 {
		t.Fatalf("%d stored inputs after the cancel, want %d (the started items')", n, done+2)
	}
	// Cancelling again is fine; deleting an ended batch removes it.
	if resp, _ := b.do(t, "POST", "/v1/batches/"+v.ID+"/cancel", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("second cancel: %d", resp.StatusCode)
	}
	if resp, _ := b.do(t, "DELETE", "/v1/batches/"+v.ID, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if resp, _ := b.do(t, "GET", "/v1/batches/"+v.ID, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("get after delete: %d", resp.StatusCode)
	}
}

func TestInteractiveJobOvertakesPendingBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	g := newGate()
	b.startBatchWorker(t, g.run, worker.Config{BatchConcurrency: 2})
	var lines []string
	for i := range 500 {
		lines = append(lines, fmt.Sprintf(`{"question":"slow %d"}`, i))
	}
	v := b.upload(t, jsonl(lines...), "application/x-ndjson", nil)
	testwait.Until(t, "batch slots busy", func() bool { return g.started.Load() == 2 })
	id := b.submit(t, "interactive?")
	resp, out := b.do(t, "GET", "/v1/jobs/"+id+"?wait=20s", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"status":"completed"`) {
		t.Fatalf("interactive job: %d %s", resp.StatusCode, out)
	}
	if c := b.batch(t, v.ID, "").RequestCounts; c.Done() != 0 {
		t.Fatalf("batch moved before the interactive job ended: %+v", c)
	}
	close(g.open)
	b.waitBatch(t, v.ID, "", "completed")
}

func TestBatchEventsProgressAndReplay(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startBatchWorker(t, echoRunner, worker.Config{})
	var lines []string
	for i := range 50 {
		lines = append(lines, fmt.Sprintf(`{"question":"q%d"}`, i))
	}
	v := b.upload(t, jsonl(lines...), "application/x-ndjson", nil)
	frames := b.openSSE(t, "GET", "/v1/batches/"+v.ID+"/events", nil, nil).rest(t)
	if len(frames) < 2 || frames[0].Event != "progress" || frames[len(frames)-1].Event != "completed" {
		t.Fatalf("frames = %+v", frames)
	}
	var last jobs.BatchProgress
	if err := json.Unmarshal([]byte(frames[len(frames)-1].Data), &last); err != nil || last.RequestCounts.Completed != 50 {
		t.Fatalf("terminal data %s: %v", frames[len(frames)-1].Data, err)
	}
	// Resuming after the first event replays the rest, without it.
	again := b.openSSE(t, "GET", "/v1/batches/"+v.ID+"/events", nil, http.Header{"Last-Event-ID": {frames[0].ID}}).rest(t)
	if len(again) != len(frames)-1 || again[0].ID != frames[1].ID {
		t.Fatalf("replay: %d frames, want %d", len(again), len(frames)-1)
	}
}

func TestBatchIdempotencyListAndRetry(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	var fail sync.Map
	fail.Store("bad", true)
	run := func(ctx context.Context, q string, o worker.RunOptions) (*worker.RunResult, error) {
		if _, ok := fail.Load(q); ok {
			return nil, &program.ParseError{Adapter: "JSONAdapter", Response: "garbage"}
		}
		return echoRunner(ctx, q, o)
	}
	b.startBatchWorker(t, run, worker.Config{})
	body := jsonl(`{"question":"good"}`, `{"question":"bad"}`)
	hdr := http.Header{"Idempotency-Key": {"k1"}}
	v := b.upload(t, body, "application/x-ndjson", hdr)
	if again := b.upload(t, body, "application/x-ndjson", http.Header{"Idempotency-Key": {"k1"}}); again.ID != v.ID {
		t.Fatalf("replay made batch %s, want %s", again.ID, v.ID)
	}
	resp, _ := b.do(t, "POST", "/v1/batches", jsonl(`{"question":"other"}`), http.Header{"Idempotency-Key": {"k1"}, "Content-Type": {"application/x-ndjson"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("other body, same key: %d", resp.StatusCode)
	}
	end := b.waitBatch(t, v.ID, "", "completed")
	if end.RequestCounts.Failed != 1 || end.RequestCounts.Completed != 1 {
		t.Fatalf("counts = %+v", end.RequestCounts)
	}
	v2 := b.upload(t, jsonl(`{"question":"second"}`), "application/x-ndjson", nil)
	resp, out := b.do(t, "GET", "/v1/batches?limit=1", nil, nil)
	list := decode[struct {
		Data    []batchView `json:"data"`
		HasMore bool        `json:"has_more"`
		LastID  string      `json:"last_id"`
	}](t, out)
	if resp.StatusCode != http.StatusOK || len(list.Data) != 1 || list.Data[0].ID != v2.ID || !list.HasMore {
		t.Fatalf("list page 1: %d %s", resp.StatusCode, out)
	}
	_, out = b.do(t, "GET", "/v1/batches?limit=1&after="+list.LastID, nil, nil)
	if !strings.Contains(string(out), v.ID) {
		t.Fatalf("list page 2: %s", out)
	}
	// Retry re-runs the failed item only.
	fail.Delete("bad")
	resp, out = b.do(t, "POST", "/v1/batches/"+v.ID+"/retry", nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry: %d %s", resp.StatusCode, out)
	}
	end = b.waitBatch(t, v.ID, "", "completed")
	if end.RequestCounts != (jobs.BatchCounts{Total: 2, Completed: 2}) {
		t.Fatalf("after retry: %+v", end.RequestCounts)
	}
	if got := b.results(t, v.ID, ""); got[1].Status != "completed" || got[1].Outputs["answer"] != "A: bad" {
		t.Fatalf("retried result: %+v", got[1])
	}
}

// TestBatchLeavesNoWindowCheck: the check scheduled at the end of a batch's
// completion window goes when the batch ends (or is deleted), and a retry's
// new window gets its own, which goes too.
func TestBatchLeavesNoWindowCheck(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	var fixed atomic.Bool
	run := func(ctx context.Context, q string, o worker.RunOptions) (*worker.RunResult, error) {
		if q == "bad" && !fixed.Load() {
			return nil, &program.ParseError{Adapter: "JSONAdapter", Response: "garbage"}
		}
		return echoRunner(ctx, q, o)
	}
	b.startBatchWorker(t, run, worker.Config{})
	insp := asynq.NewInspectorFromRedisClient(b.db.Client)
	scheduled := func() int {
		tasks, err := insp.ListScheduledTasks(jobs.QueueBatchControl)
		if err != nil {
			t.Fatal(err)
		}
		return len(tasks)
	}
	v := b.upload(t, jsonl(`{"question":"good"}`, `{"question":"bad"}`), "application/x-ndjson", nil)
	if n := scheduled(); n != 1 {
		t.Fatalf("%d scheduled checks while the batch runs, want 1", n)
	}
	if end := b.waitBatch(t, v.ID, "", "completed"); end.RequestCounts.Failed != 1 {
		t.Fatalf("counts %+v", end.RequestCounts)
	}
	// The worker that ended the batch deletes the check right after.
	testwait.Until(t, "no scheduled check after the batch ends", func() bool { return scheduled() == 0 })
	fixed.Store(true)
	if resp, out := b.do(t, "POST", "/v1/batches/"+v.ID+"/retry", nil, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry: %d %s", resp.StatusCode, out)
	}
	b.waitBatch(t, v.ID, "", "completed")
	testwait.Until(t, "no scheduled check after the retried batch ends", func() bool { return scheduled() == 0 })
	if resp, _ := b.do(t, "DELETE", "/v1/batches/"+v.ID, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if n := scheduled(); n != 0 {
		t.Fatalf("%d scheduled checks after delete", n)
	}
}
