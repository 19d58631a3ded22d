package fakelm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// client is openai-go's real client pointed at s, without retries so each
// answer is the fake's own.
func client(s *Server) openai.Client {
	return openai.NewClient(option.WithBaseURL(s.URL()+"/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
}

// batchBody is a QA program's chat request for question q.
func batchBody(q string) map[string]any {
	user := strings.Replace(chatUser, "Why is the sky blue?", q, 1)
	return map[string]any{"model": "gpt-4o-mini", "messages": msgs(user)}
}

// jsonl renders request lines for bodies, custom ids "item-0", "item-1", ….
func jsonl(t *testing.T, bodies ...map[string]any) []byte {
	t.Helper()
	var b bytes.Buffer
	for i, body := range bodies {
		line, err := json.Marshal(map[string]any{
			"custom_id": fmt.Sprintf("item-%d", i), "method": "POST", "url": "/v1/chat/completions", "body": body,
		})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func upload(t *testing.T, c openai.Client, name string, content []byte) *openai.FileObject {
	t.Helper()
	f, err := c.Files.New(context.Background(), openai.FileNewParams{
		File: openai.File(bytes.NewReader(content), name, "application/jsonl"), Purpose: openai.FilePurposeBatch,
	})
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	return f
}

func createBatch(t *testing.T, c openai.Client, fileID string, meta map[string]string) *openai.Batch {
	t.Helper()
	b, err := c.Batches.New(context.Background(), openai.BatchNewParams{
		InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h, Metadata: meta,
	})
	if err != nil {
		t.Fatalf("create batch: %v", err)
	}
	return b
}

// pollUntil retrieves the batch until it reaches a terminal status, at most
// 20 times (each retrieve moves a batch at most one phase), and returns the
// statuses it saw, from the created batch's on.
func pollUntil(t *testing.T, c openai.Client, created *openai.Batch) (*openai.Batch, []openai.BatchStatus) {
	t.Helper()
	seen := []openai.BatchStatus{created.Status}
	for range 20 {
		b, err := c.Batches.Get(context.Background(), created.ID)
		if err != nil {
			t.Fatalf("get batch: %v", err)
		}
		if len(seen) == 0 || seen[len(seen)-1] != b.Status {
			seen = append(seen, b.Status)
		}
		switch b.Status {
		case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusExpired, openai.BatchStatusCancelled:
			return b, seen
		}
	}
	t.Fatalf("batch %s did not finish; statuses %v", created.ID, seen)
	return nil, nil
}

// resultLine is one line of an output or error file as a client reads it.
type resultLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// download reads a file's lines through the client; malformed lines are
// returned raw in bad.
func download(t *testing.T, c openai.Client, id string) (lines map[string]resultLine, bad []string) {
	t.Helper()
	lines = map[string]resultLine{}
	if id == "" {
		return lines, nil
	}
	res, err := c.Files.Content(context.Background(), id)
	if err != nil {
		t.Fatalf("download %s: %v", id, err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var l resultLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			bad = append(bad, sc.Text())
			continue
		}
		if _, dup := lines[l.CustomID]; dup {
			t.Errorf("custom_id %s twice in %s", l.CustomID, id)
		}
		lines[l.CustomID] = l
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines, bad
}

// liveAnswer is the live endpoint's answer to body: its message and usage.
func liveAnswer(t *testing.T, s *Server, body map[string]any) string {
	t.Helper()
	res := post(t, s, body)
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("live answer: %d %s", res.StatusCode, b)
	}
	return comparable(t, b)
}

// comparable is a completion without the fields that name the moment it was
// made (created): what a batch answer and a live one must share.
func comparable(t *testing.T, completion []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(completion, &m); err != nil {
		t.Fatalf("completion %s: %v", completion, err)
	}
	delete(m, "created")
	b, _ := json.Marshal(m)
	return string(b)
}

func TestBatchEndToEnd(t *testing.T) {
	t.Parallel()
	var hooked []string
	s := setup(t, Config{Batch: BatchConfig{OnCreate: func(id string, meta map[string]string) {
		hooked = append(hooked, id+" "+meta["qaqueue_batch"])
	}}})
	c := client(s)
	bodies := []map[string]any{batchBody("Why is the sky blue?"), batchBody("What is Go?"), batchBody("Who wrote Hamlet?")}
	in := upload(t, c, "qaqueue-b1-r0-s0-c0.jsonl", jsonl(t, bodies...))
	if in.Purpose != openai.FileObjectPurposeBatch || in.Bytes != int64(len(jsonl(t, bodies...))) || in.Filename != "qaqueue-b1-r0-s0-c0.jsonl" {
		t.Fatalf("uploaded file = %+v", in)
	}
	b := createBatch(t, c, in.ID, map[string]string{"qaqueue_batch": "b1"})
	if b.Status != openai.BatchStatusValidating || b.InputFileID != in.ID || b.Metadata["qaqueue_batch"] != "b1" || b.ExpiresAt-b.CreatedAt != 24*3600 {
		t.Fatalf("created batch = %s", b.RawJSON())
	}
	if want := []string{b.ID + " b1"}; fmt.Sprint(hooked) != fmt.Sprint(want) || s.BatchesCreated() != 1 {
		t.Errorf("OnCreate saw %v, want %v; BatchesCreated = %d", hooked, want, s.BatchesCreated())
	}
	done, seen := pollUntil(t, c, b)
	want := []openai.BatchStatus{"validating", "in_progress", "finalizing", "completed"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("statuses %v, want %v", seen, want)
	}
	if done.RequestCounts.Total != 3 || done.RequestCounts.Completed != 3 || done.RequestCounts.Failed != 0 {
		t.Errorf("request_counts = %s", done.RequestCounts.RawJSON())
	}
	if done.InProgressAt == 0 || done.FinalizingAt == 0 || done.CompletedAt == 0 || done.OutputFileID == "" || done.ErrorFileID != "" {
		t.Errorf("completed batch = %s", done.RawJSON())
	}
	out, bad := download(t, c, done.OutputFileID)
	if len(bad) > 0 || len(out) != 3 {
		t.Fatalf("output: %d lines, bad %q", len(out), bad)
	}
	for i, body := range bodies {
		l := out[fmt.Sprintf("item-%d", i)]
		if l.Response == nil || l.Response.StatusCode != 200 || l.Error != nil || l.Response.RequestID == "" || !strings.HasPrefix(l.ID, "batch_req_") {
			t.Fatalf("line %d = %+v", i, l)
		}
		if got, live := comparable(t, l.Response.Body), liveAnswer(t, s, body); got != live {
			t.Errorf("item %d: batch answer\n%s\nlive answer\n%s", i, got, live)
		}
	}
}

// apiError is the *openai.Error of err, failing the test when it is not one.
func apiError(t *testing.T, err error) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *openai.Error", err)
	}
	return e
}

func TestBatchPartialFailuresAndMalformedLines(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{Batch: BatchConfig{FailEvery: 4, FailStatus: 400, MalformedEvery: 5}})
	c := client(s)
	var bodies []map[string]any
	for i := range 6 {
		bodies = append(bodies, batchBody(fmt.Sprintf("Question %d?", i)))
	}
	bodies[1] = batchBody("Question 1? [[fakelm:500]]")
	bodies[2] = batchBody("Question 2? [[fakelm:garbage]]")
	bodies[5] = batchBody("Question 5? [[fakelm:503,times=1]]")
	in := upload(t, c, "in.jsonl", jsonl(t, bodies...))
	done, _ := pollUntil(t, c, createBatch(t, c, in.ID, nil))
	if done.Status != openai.BatchStatusCompleted || done.RequestCounts.Completed != 3 || done.RequestCounts.Failed != 3 {
		t.Fatalf("batch = %s", done.RawJSON())
	}
	out, bad := download(t, c, done.OutputFileID)
	errs, badErrs := download(t, c, done.ErrorFileID)
	if len(badErrs) != 0 || len(bad) != 1 || !strings.Contains(bad[0], `"custom_id":"item-4"`) {
		t.Fatalf("malformed lines: output %q, errors %q", bad, badErrs)
	}
	for id, status := range map[string]int{"item-1": 500, "item-3": 400, "item-5": 503} {
		l, ok := errs[id]
		if !ok || l.Response == nil || l.Response.StatusCode != status || !strings.Contains(string(l.Response.Body), `"error"`) {
			t.Errorf("error line %s = %+v, want status %d with an error body", id, l, status)
		}
	}
	for _, id := range []string{"item-0", "item-2"} {
		if l, ok := out[id]; !ok || l.Response.StatusCode != 200 {
			t.Errorf("output line %s = %+v", id, l)
		}
	}
	if got, live := comparable(t, out["item-2"].Response.Body), liveAnswer(t, s, bodies[2]); got != live {
		t.Errorf("garbage line: batch %s, live %s", got, live)
	}
	liveAnswer(t, s, bodies[5]) // times=1 was spent by the batch line: the live retry is answered
}

func TestBatchCancelKeepsWhatItAnswered(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{Batch: BatchConfig{StallAfter: 2}})
	c := client(s)
	ctx := context.Background()
	in := upload(t, c, "in.jsonl", jsonl(t, batchBody("a?"), batchBody("b?"), batchBody("c?"), batchBody("d?")))
	b := createBatch(t, c, in.ID, nil)
	for range 3 { // validating → in_progress, then it answers two lines and holds
		s.StepBatches()
	}
	got, err := c.Batches.Get(ctx, b.ID)
	if err != nil || got.Status != openai.BatchStatusInProgress || got.RequestCounts.Completed != 2 {
		t.Fatalf("before cancel: %v %s", err, got.RawJSON())
	}
	cancelling, err := c.Batches.Cancel(ctx, b.ID)
	if err != nil || cancelling.Status != openai.BatchStatusCancelling || cancelling.CancellingAt == 0 {
		t.Fatalf("cancel = %v %s", err, cancelling.RawJSON())
	}
	done, _ := pollUntil(t, c, cancelling)
	if done.Status != openai.BatchStatusCancelled || done.CancelledAt == 0 {
		t.Fatalf("after cancel: %s", done.RawJSON())
	}
	out, _ := download(t, c, done.OutputFileID)
	errs, _ := download(t, c, done.ErrorFileID)
	if len(out) != 2 || out["item-0"].Response == nil || out["item-1"].Response == nil {
		t.Errorf("output = %+v", out)
	}
	for _, id := range []string{"item-2", "item-3"} {
		if l := errs[id]; l.Error == nil || l.Error.Code != "batch_cancelled" || l.Response != nil {
			t.Errorf("error line %s = %+v", id, l)
		}
	}
	if _, err := c.Batches.Cancel(ctx, b.ID); err != nil {
		t.Errorf("cancelling a cancelled batch again: %v", err)
	}
	in2 := upload(t, c, "in2.jsonl", jsonl(t, batchBody("e?")))
	finished, _ := pollUntil(t, c, createBatch(t, c, in2.ID, nil))
	if _, err := c.Batches.Cancel(ctx, finished.ID); apiError(t, err).StatusCode != http.StatusConflict {
		t.Errorf("cancelling a finished batch: %v, want 409", err)
	}
}

func TestBatchExpiresWithPartialOutput(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{Batch: BatchConfig{Window: time.Hour}})
	c := client(s)
	// A stalled line is never answered: the batch waits in_progress for it.
	in := upload(t, c, "in.jsonl", jsonl(t, batchBody("a?"), batchBody("b? [[fakelm:stall]]"), batchBody("c?")))
	b := createBatch(t, c, in.ID, nil)
	if b.ExpiresAt-b.CreatedAt != 3600 {
		t.Errorf("expires_at - created_at = %d, want the 1h window", b.ExpiresAt-b.CreatedAt)
	}
	for range 5 {
		s.StepBatches()
	}
	got, err := c.Batches.Get(context.Background(), b.ID)
	if err != nil || got.Status != openai.BatchStatusInProgress || got.RequestCounts.Completed != 2 {
		t.Fatalf("stalled batch: %v %s", err, got.RawJSON())
	}
	s.Advance(time.Hour)
	done, _ := pollUntil(t, c, got)
	if done.Status != openai.BatchStatusExpired || done.ExpiredAt == 0 {
		t.Fatalf("after the window: %s", done.RawJSON())
	}
	out, _ := download(t, c, done.OutputFileID)
	errs, _ := download(t, c, done.ErrorFileID)
	if len(out) != 2 || out["item-0"].Response == nil || out["item-2"].Response == nil {
		t.Errorf("output = %+v", out)
	}
	if l := errs["item-1"]; len(errs) != 1 || l.Error == nil || l.Error.Code != "batch_expired" {
		t.Errorf("errors = %+v", errs)
	}
}

func TestBatchValidationFailure(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{Batch: BatchConfig{MaxRequests: 5}})
	c := client(s)
	good := func(id string) string {
		return `{"custom_id":"` + id + `","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}}`
	}
	tests := []struct {
		name, content string
		wantCode      string
		wantLine      int64
	}{
		{"duplicate custom_id", good("x") + "\n" + good("x") + "\n", "duplicate_custom_id", 2},
		{"not JSON", good("x") + "\n{nope\n", "invalid_json_line", 2},
		{"wrong url", strings.Replace(good("x"), "/v1/chat/completions", "/v1/embeddings", 1), "invalid_url", 1},
		{"GET", strings.Replace(good("x"), "POST", "GET", 1), "invalid_request", 1},
		{"no custom_id", `{"method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, "missing_required_parameter", 1},
		{"no body", `{"custom_id":"x","method":"POST","url":"/v1/chat/completions"}`, "missing_required_parameter", 1},
		{"two models", good("x") + "\n" + strings.Replace(good("y"), "gpt-4o-mini", "gpt-4o", 1), "mismatched_model", 2},
		{"too many", strings.Repeat(good("x")+"\n", 1) + good("a") + "\n" + good("b") + "\n" + good("c") + "\n" + good("d") + "\n" + good("e") + "\n", "too_many_tasks", 0},
		{"empty", "\n", "empty_file", 0},
	}
	for _, tt := range tests {
		in := upload(t, c, "in.jsonl", []byte(tt.content))
		done, _ := pollUntil(t, c, createBatch(t, c, in.ID, nil))
		if done.Status != openai.BatchStatusFailed || done.FailedAt == 0 || len(done.Errors.Data) == 0 {
			t.Errorf("%s: batch = %s", tt.name, done.RawJSON())
			continue
		}
		e := done.Errors.Data[0]
		if e.Code != tt.wantCode || e.Line != tt.wantLine || e.Message == "" {
			t.Errorf("%s: error = %s, want code %s line %d", tt.name, e.RawJSON(), tt.wantCode, tt.wantLine)
		}
	}
}

func TestBatchCreateRejectsBadRequests(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	c := client(s)
	ctx := context.Background()
	in := upload(t, c, "in.jsonl", jsonl(t, batchBody("a?")))
	meta := map[string]string{}
	for i := range 17 {
		meta[fmt.Sprint(i)] = "v"
	}
	tests := []struct {
		name   string
		params openai.BatchNewParams
		status int
		param  string
	}{
		{"unknown file", openai.BatchNewParams{InputFileID: "file-nope", Endpoint: "/v1/chat/completions", CompletionWindow: "24h"}, 404, "id"},
		{"endpoint", openai.BatchNewParams{InputFileID: in.ID, Endpoint: "/v1/embeddings", CompletionWindow: "24h"}, 400, "endpoint"},
		{"window", openai.BatchNewParams{InputFileID: in.ID, Endpoint: "/v1/chat/completions", CompletionWindow: "1h"}, 400, "completion_window"},
		{"metadata", openai.BatchNewParams{InputFileID: in.ID, Endpoint: "/v1/chat/completions", CompletionWindow: "24h", Metadata: meta}, 400, "metadata"},
	}
	for _, tt := range tests {
		_, err := c.Batches.New(ctx, tt.params)
		if e := apiError(t, err); e.StatusCode != tt.status || e.Param != tt.param || e.Message == "" {
			t.Errorf("%s: %d param %q (%s), want %d %q", tt.name, e.StatusCode, e.Param, e.Message, tt.status, tt.param)
		}
	}
	if n := s.BatchesCreated(); n != 0 {
		t.Errorf("BatchesCreated = %d after refused creates", n)
	}
}

func TestBatchTokenLimit(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{Batch: BatchConfig{TokenLimit: 100}})
	c := client(s)
	content := jsonl(t, batchBody("a?")) // 61 prompt tokens: one fits, two do not
	first := createBatch(t, c, upload(t, c, "1.jsonl", content).ID, nil)
	s.StepBatches() // first: in_progress, its tokens enqueued
	second, _ := pollUntil(t, c, createBatch(t, c, upload(t, c, "2.jsonl", content).ID, nil))
	if second.Status != openai.BatchStatusFailed || len(second.Errors.Data) != 1 || second.Errors.Data[0].Code != "token_limit_exceeded" {
		t.Fatalf("second batch = %s", second.RawJSON())
	}
	if done, _ := pollUntil(t, c, first); done.Status != openai.BatchStatusCompleted {
		t.Fatalf("first batch = %s", done.RawJSON())
	}
	third, _ := pollUntil(t, c, createBatch(t, c, upload(t, c, "3.jsonl", content).ID, nil))
	if third.Status != openai.BatchStatusCompleted {
		t.Errorf("a batch once the first finished = %s", third.RawJSON())
	}
	if n := s.BatchesCreated(); n != 3 {
		t.Errorf("BatchesCreated = %d, want 3", n)
	}
}

func TestBatchAPIOutageThenSuccess(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{Batch: BatchConfig{OutageRequests: 2, OutageRetryAfter: 3 * time.Second}})
	c := client(s)
	ctx := context.Background()
	for range 2 {
		_, err := c.Files.List(ctx, openai.FileListParams{})
		e := apiError(t, err)
		if e.StatusCode != http.StatusServiceUnavailable || e.Response.Header.Get("Retry-After") != "3" {
			t.Fatalf("during the outage: %d Retry-After %q", e.StatusCode, e.Response.Header.Get("Retry-After"))
		}
	}
	in := upload(t, c, "in.jsonl", jsonl(t, batchBody("a?")))
	s.FailBatchAPI(1, Status429(2*time.Second))
	_, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: in.ID, Endpoint: "/v1/chat/completions", CompletionWindow: "24h"})
	if e := apiError(t, err); e.StatusCode != http.StatusTooManyRequests || e.Response.Header.Get("Retry-After") != "2" {
		t.Fatalf("queued 429: %d", e.StatusCode)
	}
	if s.BatchesCreated() != 0 {
		t.Fatal("a refused create created a batch")
	}
	if done, _ := pollUntil(t, c, createBatch(t, c, in.ID, nil)); done.Status != openai.BatchStatusCompleted {
		t.Fatalf("after the outage: %s", done.RawJSON())
	}
	if n := s.RequestsTo("/v1/batches/{id}"); n < 3 {
		t.Errorf("RequestsTo(/v1/batches/{id}) = %d, want the polls counted by route", n)
	}
}

func TestFilesAndBatchesListPagination(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	c := client(s)
	ctx := context.Background()
	var fileIDs, batchIDs []string
	for i := range 5 {
		f := upload(t, c, fmt.Sprintf("f%d.jsonl", i), jsonl(t, batchBody("a?")))
		fileIDs = append(fileIDs, f.ID)
		b := createBatch(t, c, f.ID, map[string]string{"qaqueue_chunk": fmt.Sprint(i)})
		batchIDs = append(batchIDs, b.ID)
		s.Advance(time.Second) // distinct created_at
	}
	pollUntil(t, c, &openai.Batch{ID: batchIDs[0], Status: "validating"}) // one output file, purpose batch_output

	var pages int
	var got []string
	for it := c.Batches.ListAutoPaging(ctx, openai.BatchListParams{Limit: openai.Int(2)}); it.Next(); {
		b := it.Current()
		if it.Index()%2 == 1 {
			pages++
		}
		if b.Metadata["qaqueue_chunk"] == "" {
			t.Errorf("listed batch %s without its metadata", b.ID)
		}
		got = append(got, b.ID)
	}
	want := append([]string(nil), batchIDs...)
	reverse(want)
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 3 {
		t.Errorf("batches listed %v in %d pages, want newest first %v in 3", got, pages, want)
	}

	got = nil
	for it := c.Files.ListAutoPaging(ctx, openai.FileListParams{Limit: openai.Int(2), Purpose: openai.String("batch"), Order: "asc"}); it.Next(); {
		got = append(got, it.Current().ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(fileIDs) {
		t.Errorf("batch files listed %v, want oldest first %v", got, fileIDs)
	}
	page, err := c.Files.List(ctx, openai.FileListParams{})
	if err != nil || len(page.Data) != 6 || page.Data[0].Purpose != openai.FileObjectPurposeBatchOutput {
		t.Errorf("all files, newest first: %v %s", err, page.RawJSON())
	}
	if _, err := c.Files.List(ctx, openai.FileListParams{Limit: openai.Int(10001)}); apiError(t, err).Param != "limit" {
		t.Errorf("limit over 10,000: %v", err)
	}
}

func TestFileRetrieveDeleteAndLimits(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{Batch: BatchConfig{MaxFileBytes: 1000}})
	c := client(s)
	ctx := context.Background()
	content := jsonl(t, batchBody("a?"))
	f := upload(t, c, "in.jsonl", content)
	got, err := c.Files.Get(ctx, f.ID)
	if err != nil || got.ID != f.ID || got.Bytes != int64(len(content)) || got.Status != "processed" {
		t.Fatalf("get = %v %+v", err, got)
	}
	res, err := c.Files.Content(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if !bytes.Equal(b, content) {
		t.Errorf("content = %q, want %q", b, content)
	}
	del, err := c.Files.Delete(ctx, f.ID)
	if err != nil || !del.Deleted || del.ID != f.ID {
		t.Fatalf("delete = %v %+v", err, del)
	}
	for _, err := range []error{
		func() error { _, err := c.Files.Get(ctx, f.ID); return err }(),
		func() error { _, err := c.Files.Delete(ctx, f.ID); return err }(),
	} {
		if apiError(t, err).StatusCode != http.StatusNotFound {
			t.Errorf("after delete: %v, want 404", err)
		}
	}
	_, err = c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(make([]byte, 1001)), "big.jsonl", "application/jsonl"), Purpose: "batch"})
	if e := apiError(t, err); e.StatusCode != http.StatusRequestEntityTooLarge || e.Param != "file" || !strings.Contains(e.Message, "MaxFileBytes") {
		t.Errorf("over MaxFileBytes: %d %q %q", e.StatusCode, e.Param, e.Message)
	}
	_, err = c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(content), "a.jsonl", "application/jsonl"), Purpose: "fine-tune"})
	if e := apiError(t, err); e.StatusCode != http.StatusBadRequest || e.Param != "purpose" {
		t.Errorf("purpose fine-tune: %d %q", e.StatusCode, e.Param)
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestFileUploadIsStreamed uploads 32 MB from a pipe: the fake keeps the
// file's bytes once (no whole-body buffer, no doubling copies) and frees
// them when the file is deleted. Not parallel: it measures the heap.
func TestFileUploadIsStreamed(t *testing.T) {
	s := setup(t, Config{})
	const size = 32 << 20
	line := append(bytes.Repeat([]byte("x"), 1023), '\n')
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		_ = mw.WriteField("purpose", "batch")
		fw, _ := mw.CreateFormFile("file", "big.jsonl")
		for range size / len(line) {
			if _, err := fw.Write(line); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	before := liveHeap()
	res, err := http.Post(s.URL()+"/files", mw.FormDataContentType(), pr)
	if err != nil {
		t.Fatal(err)
	}
	var f fileObject
	_ = json.NewDecoder(res.Body).Decode(&f)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || f.Bytes != size {
		t.Fatalf("upload: %d %+v", res.StatusCode, f)
	}
	kept := liveHeap()
	t.Logf("heap grew %d bytes keeping a %d-byte upload", int64(kept)-int64(before), size)
	// About the file's size either way: other tests' garbage freed by the
	// collections in between can take a few KB off (seen: 2.9 KB under).
	if grown := int64(kept) - int64(before); grown < size-size/16 || grown > size+size/8 {
		t.Errorf("the heap grew %d bytes keeping a %d-byte file, want about the file's size", grown, size)
	}
	req, _ := http.NewRequest(http.MethodDelete, s.URL()+"/files/"+f.ID, nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if after := liveHeap(); int64(after)-int64(before) > size/8 {
		t.Errorf("the heap is %d bytes over its start after the delete", int64(after)-int64(before))
	}
}

func TestBatchProgressFollowsTheFakeClock(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{Batch: BatchConfig{Validating: time.Minute, InProgress: time.Hour, Finalizing: time.Minute}})
	c := client(s)
	ctx := context.Background()
	in := upload(t, c, "in.jsonl", jsonl(t, batchBody("a?"), batchBody("b?"), batchBody("c?"), batchBody("d?")))
	b := createBatch(t, c, in.ID, nil)
	get := func() *openai.Batch {
		t.Helper()
		got, err := c.Batches.Get(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := get(); got.Status != openai.BatchStatusValidating {
		t.Fatalf("before its turnaround: %s", got.Status)
	}
	s.Advance(time.Minute)
	if got := get(); got.Status != openai.BatchStatusInProgress || got.InProgressAt-got.CreatedAt != 60 {
		t.Fatalf("after a minute: %s", got.RawJSON())
	}
	s.Advance(30 * time.Minute)
	if got := get(); got.Status != openai.BatchStatusInProgress || got.RequestCounts.Completed != 2 {
		t.Fatalf("half way: %s", got.RawJSON())
	}
	s.Advance(30 * time.Minute)
	if got := get(); got.Status != openai.BatchStatusFinalizing || got.RequestCounts.Completed != 4 {
		t.Fatalf("after the hour: %s", got.RawJSON())
	}
	if got := get(); got.Status != openai.BatchStatusFinalizing {
		t.Fatalf("before finalizing's minute: %s", got.Status)
	}
	s.Advance(time.Minute)
	if got := get(); got.Status != openai.BatchStatusCompleted || got.CompletedAt-got.CreatedAt != 62*60 {
		t.Fatalf("done: %s", got.RawJSON())
	}
}

func TestBatchAndFileCaps(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{Batch: BatchConfig{MaxBatches: 2, MaxFiles: 1}})
	c := client(s)
	ctx := context.Background()
	in := upload(t, c, "in.jsonl", jsonl(t, batchBody("a?")))
	_, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader([]byte("{}\n")), "b.jsonl", "application/jsonl"), Purpose: "batch"})
	if e := apiError(t, err); e.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(e.Message, "MaxFiles") {
		t.Errorf("an upload past MaxFiles: %d %s", e.StatusCode, e.Message)
	}
	first := createBatch(t, c, in.ID, nil)
	createBatch(t, c, in.ID, nil)
	_, err = c.Batches.New(ctx, openai.BatchNewParams{InputFileID: in.ID, Endpoint: "/v1/chat/completions", CompletionWindow: "24h"})
	if e := apiError(t, err); e.StatusCode != http.StatusTooManyRequests || !strings.Contains(e.Message, "MaxBatches") {
		t.Errorf("a third batch while two run: %d %s", e.StatusCode, e.Message)
	}
	done, _ := pollUntil(t, c, first)
	createBatch(t, c, in.ID, nil) // room made by dropping the finished one
	if _, err := c.Batches.Get(ctx, first.ID); apiError(t, err).StatusCode != http.StatusNotFound {
		t.Errorf("the dropped batch: %v", err)
	}
	if _, err := c.Files.Get(ctx, done.OutputFileID); apiError(t, err).StatusCode != http.StatusNotFound {
		t.Errorf("the dropped batch's output: %v", err)
	}
}

// BenchmarkBatch10k runs a 10,000-line batch (upload, create, poll to
// completion, download) through openai-go: the fake's cost per batch line.
func BenchmarkBatch10k(b *testing.B) {
	s, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := client(s)
	ctx := context.Background()
	var buf bytes.Buffer
	for i := range 10000 {
		line, _ := json.Marshal(map[string]any{"custom_id": fmt.Sprint(i), "method": "POST", "url": "/v1/chat/completions",
			"body": batchBody(fmt.Sprintf("Question %d?", i))})
		buf.Write(append(line, '\n'))
	}
	b.ResetTimer()
	for b.Loop() {
		f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(buf.Bytes()), "in.jsonl", "application/jsonl"), Purpose: "batch"})
		if err != nil {
			b.Fatal(err)
		}
		bt, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: "/v1/chat/completions", CompletionWindow: "24h"})
		if err != nil {
			b.Fatal(err)
		}
		for bt.Status != openai.BatchStatusCompleted {
			if bt, err = c.Batches.Get(ctx, bt.ID); err != nil {
				b.Fatal(err)
			}
		}
		res, err := c.Files.Content(ctx, bt.OutputFileID)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		b.ReportMetric(float64(n)/1e6, "MB-out")
		_, _ = c.Files.Delete(ctx, f.ID)
		_, _ = c.Files.Delete(ctx, bt.OutputFileID)
	}
}

// TestPurgeBatch: a purged batch is gone as one deleted at the provider
// is: its retrieve and cancel answer 404 and the list leaves it out; its
// files are not touched.
func TestPurgeBatch(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	c := client(s)
	in := upload(t, c, "purged.jsonl", jsonl(t, batchBody("Why is the sky blue?")))
	b := createBatch(t, c, in.ID, nil)
	if !s.PurgeBatch(b.ID) {
		t.Fatal("PurgeBatch found no batch")
	}
	if s.PurgeBatch(b.ID) {
		t.Error("PurgeBatch purged a batch twice")
	}
	ctx := context.Background()
	_, err := c.Batches.Get(ctx, b.ID)
	if e := apiError(t, err); e.StatusCode != http.StatusNotFound {
		t.Errorf("retrieve of a purged batch: %d, want 404", e.StatusCode)
	}
	_, err = c.Batches.Cancel(ctx, b.ID)
	if e := apiError(t, err); e.StatusCode != http.StatusNotFound {
		t.Errorf("cancel of a purged batch: %d, want 404", e.StatusCode)
	}
	page, err := c.Batches.List(ctx, openai.BatchListParams{})
	if err != nil || len(page.Data) != 0 {
		t.Errorf("list after the purge: %d batches, %v; want none", len(page.Data), err)
	}
	if _, err := c.Files.Get(ctx, in.ID); err != nil {
		t.Errorf("the purged batch's input file: %v, want kept", err)
	}
}

// TestFileUploadCutShortIsRefused sends a multipart upload whose file part
// never reaches its closing boundary: the fake must refuse it with a 400
// naming the file, not answer an empty 200 nor store half a file.
func TestFileUploadCutShortIsRefused(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", "cut.jsonl")
	_, _ = fw.Write(jsonl(t, batchBody("a?")))
	// No mw.Close(): the body ends inside the file part.
	if status, param := postUpload(t, s, mw.FormDataContentType(), &body); status != http.StatusBadRequest || param != "file" {
		t.Errorf("cut-short upload: %d param %q, want 400 naming file", status, param)
	}
	c := client(s)
	list, err := c.Files.List(context.Background(), openai.FileListParams{})
	if err != nil || len(list.Data) != 0 {
		t.Errorf("files after a refused upload: %v %d, want none", err, len(list.Data))
	}
}

// TestFileUploadWithTwoFilesIsRefused: a form with two file parts is a 400
// naming the file, not the last part stored in place of the first.
func TestFileUploadWithTwoFilesIsRefused(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("purpose", "batch")
	for _, name := range []string{"a.jsonl", "b.jsonl"} {
		fw, _ := mw.CreateFormFile("file", name)
		_, _ = fw.Write(jsonl(t, batchBody("a?")))
	}
	_ = mw.Close()
	if status, param := postUpload(t, s, mw.FormDataContentType(), &body); status != http.StatusBadRequest || param != "file" {
		t.Errorf("two-file upload: %d param %q, want 400 naming file", status, param)
	}
}

// postUpload posts a hand-made upload form to s: the answer's status and
// the param its error names.
func postUpload(t *testing.T, s *Server, contentType string, body io.Reader) (status int, param string) {
	t.Helper()
	res, err := http.Post(s.URL()+"/files", contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e struct {
		Error struct {
			Param string `json:"param"`
		} `json:"error"`
	}
	_ = json.NewDecoder(res.Body).Decode(&e)
	return res.StatusCode, e.Error.Param
}
