package lmclient

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// batchWire is a test double of the provider's wire, not a stub of any
// function here: an HTTP server answering OpenAI's documented Files and
// Batches requests (multipart upload, cursor-paged lists newest first,
// content download, delete, batch create/retrieve/cancel/list) with their
// documented JSON shapes, under prefix ("/v1", or Azure's "/openai"). It
// reads uploads as a stream, keeping a hash of each file and the content
// of small ones. fail queues error answers per route. The project's fake
// provider (lmclient/fakelm) grows the same endpoints; this double keeps
// these tests to the wire shapes alone.
type batchWire struct {
	prefix  string
	pageMax int // the most items a list page holds

	mu       sync.Mutex
	seq      int
	files    []*wireFile  // oldest first
	batches  []*wireBatch // oldest first
	faults   map[string][]wireFault
	requests []string // method, path and query of each request
	headers  []http.Header
}

type wireFile struct {
	ID, Filename, Purpose, ContentType string
	Bytes                              int64
	Sum                                [sha256.Size]byte
	Content                            []byte // when at most 1 MiB
}

type wireBatch map[string]any

type wireFault struct {
	status int
	header http.Header
	body   string
}

func newBatchWire(t *testing.T, prefix string) (*batchWire, *httptest.Server) {
	t.Helper()
	w := &batchWire{prefix: prefix, pageMax: 100, faults: map[string][]wireFault{}}
	mux := http.NewServeMux()
	routes := map[string]http.HandlerFunc{
		"POST /files":               w.upload,
		"GET /files":                w.listFiles,
		"GET /files/{id}/content":   w.content,
		"DELETE /files/{id}":        w.deleteFile,
		"POST /batches":             w.createBatch,
		"GET /batches":              w.listBatches,
		"GET /batches/{id}":         w.getBatch,
		"POST /batches/{id}/cancel": w.cancelBatch,
	}
	for route, h := range routes {
		method, path, _ := strings.Cut(route, " ")
		mux.HandleFunc(method+" "+prefix+path, func(rw http.ResponseWriter, r *http.Request) {
			w.mu.Lock()
			w.requests = append(w.requests, r.Method+" "+r.URL.RequestURI())
			w.headers = append(w.headers, r.Header.Clone())
			var f *wireFault
			if q := w.faults[route]; len(q) > 0 {
				f, w.faults[route] = &q[0], q[1:]
			}
			w.mu.Unlock()
			if f != nil {
				_, _ = io.Copy(io.Discard, r.Body)
				for k, v := range f.header {
					rw.Header()[k] = v
				}
				rw.WriteHeader(f.status)
				_, _ = io.WriteString(rw, f.body)
				return
			}
			h(rw, r)
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return w, srv
}

// fail makes the next request to route ("GET /batches/{id}", …) answer
// status with header and body.
func (w *batchWire) fail(route string, status int, header http.Header, body string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faults[route] = append(w.faults[route], wireFault{status, header, body})
}

func (w *batchWire) lastRequest() (string, http.Header) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests[len(w.requests)-1], w.headers[len(w.headers)-1]
}

// fileAt is the i-th stored file, oldest first; nil when none.
func (w *batchWire) fileAt(i int) *wireFile {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i >= len(w.files) {
		return nil
	}
	return w.files[i]
}

// batchField is field of the i-th batch created.
func (w *batchWire) batchField(i int, field string) any {
	w.mu.Lock()
	defer w.mu.Unlock()
	return (*w.batches[i])[field]
}

func (w *batchWire) nextID(kind string) string {
	w.seq++
	return fmt.Sprintf("%s-%03d", kind, w.seq)
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(v)
}

func notFound(rw http.ResponseWriter, what string) {
	writeJSON(rw, http.StatusNotFound, map[string]any{"error": map[string]any{
		"message": "No such " + what, "type": "invalid_request_error", "code": nil}})
}

func (f *wireFile) object() map[string]any {
	return map[string]any{"id": f.ID, "object": "file", "bytes": f.Bytes, "created_at": 1733500000,
		"filename": f.Filename, "purpose": f.Purpose, "status": "processed"}
}

// upload reads the multipart form as a stream, as OpenAI documents it:
// fields "purpose" and "file".
func (w *batchWire) upload(rw http.ResponseWriter, r *http.Request) {
	mr, err := r.MultipartReader()
	if err != nil {
		writeJSON(rw, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": err.Error()}})
		return
	}
	f := &wireFile{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeJSON(rw, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": err.Error()}})
			return
		}
		switch p.FormName() {
		case "purpose":
			b, _ := io.ReadAll(p)
			f.Purpose = string(b)
		case "file":
			f.Filename, f.ContentType = p.FileName(), p.Header.Get("Content-Type")
			h := sha256.New()
			var small bytes.Buffer
			n, err := io.Copy(io.MultiWriter(h, &limitedBuffer{&small, 1 << 20}), p)
			if err != nil {
				writeJSON(rw, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": err.Error()}})
				return
			}
			f.Bytes, f.Sum = n, [sha256.Size]byte(h.Sum(nil))
			if n <= 1<<20 {
				f.Content = small.Bytes()
			}
		}
	}
	if f.Purpose != "batch" || f.Filename == "" {
		writeJSON(rw, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "purpose and file are required"}})
		return
	}
	w.mu.Lock()
	f.ID = w.nextID("file")
	w.files = append(w.files, f)
	w.mu.Unlock()
	writeJSON(rw, http.StatusOK, f.object())
}

// limitedBuffer keeps the first n bytes written and drops the rest.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// page is a cursor page of objects (newest first) after the "after" id.
func (w *batchWire) page(r *http.Request, ids []string, objects []any) map[string]any {
	limit := w.pageMax
	if l, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && l < limit {
		limit = l
	}
	start := 0
	if after := r.URL.Query().Get("after"); after != "" {
		start = slices.Index(ids, after) + 1
	}
	end := min(start+limit, len(objects))
	return map[string]any{"object": "list", "data": objects[start:end], "has_more": end < len(objects)}
}

func (w *batchWire) listFiles(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	var objs []any
	for _, f := range slices.Backward(w.files) {
		if p := r.URL.Query().Get("purpose"); p == "" || p == f.Purpose {
			ids, objs = append(ids, f.ID), append(objs, f.object())
		}
	}
	writeJSON(rw, http.StatusOK, w.page(r, ids, objs))
}

func (w *batchWire) file(id string) *wireFile {
	for _, f := range w.files {
		if f.ID == id {
			return f
		}
	}
	return nil
}

func (w *batchWire) content(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	f := w.file(r.PathValue("id"))
	w.mu.Unlock()
	if f == nil {
		notFound(rw, "file")
		return
	}
	rw.Header().Set("Content-Type", "application/octet-stream")
	_, _ = rw.Write(f.Content)
}

func (w *batchWire) deleteFile(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id := r.PathValue("id")
	i := slices.IndexFunc(w.files, func(f *wireFile) bool { return f.ID == id })
	if i < 0 {
		notFound(rw, "file")
		return
	}
	w.files = slices.Delete(w.files, i, i+1)
	writeJSON(rw, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
}

func (w *batchWire) createBatch(rw http.ResponseWriter, r *http.Request) {
	var req struct {
		InputFileID      string            `json:"input_file_id"`
		Endpoint         string            `json:"endpoint"`
		CompletionWindow string            `json:"completion_window"`
		Metadata         map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.InputFileID == "" || req.Endpoint == "" || req.CompletionWindow != "24h" {
		writeJSON(rw, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": fmt.Sprintf("bad batch request %+v: %v", req, err)}})
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file(req.InputFileID) == nil {
		notFound(rw, "file")
		return
	}
	b := wireBatch{"id": w.nextID("batch"), "object": "batch", "endpoint": req.Endpoint, "errors": nil,
		"input_file_id": req.InputFileID, "completion_window": req.CompletionWindow, "status": "validating",
		"output_file_id": nil, "error_file_id": nil, "created_at": 1733500000 + w.seq,
		"request_counts": map[string]any{"total": 0, "completed": 0, "failed": 0}, "metadata": req.Metadata}
	w.batches = append(w.batches, &b)
	writeJSON(rw, http.StatusOK, b)
}

func (w *batchWire) listBatches(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	var objs []any
	for _, b := range slices.Backward(w.batches) {
		ids, objs = append(ids, (*b)["id"].(string)), append(objs, *b)
	}
	writeJSON(rw, http.StatusOK, w.page(r, ids, objs))
}

func (w *batchWire) batch(id string) *wireBatch {
	for _, b := range w.batches {
		if (*b)["id"] == id {
			return b
		}
	}
	return nil
}

func (w *batchWire) getBatch(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.batch(r.PathValue("id"))
	if b == nil {
		notFound(rw, "batch")
		return
	}
	writeJSON(rw, http.StatusOK, *b)
}

func (w *batchWire) cancelBatch(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.batch(r.PathValue("id"))
	if b == nil {
		notFound(rw, "batch")
		return
	}
	(*b)["status"] = "cancelling"
	writeJSON(rw, http.StatusOK, *b)
}

// batchAPIFor is a BatchAPI of an openai/ model on the double.
func batchAPIFor(t *testing.T, srv *httptest.Server) *BatchAPI {
	t.Helper()
	a, err := NewBatchAPI(Config{Model: "openai/gpt-4o-mini", APIBase: srv.URL + "/v1", APIKey: "sk-test"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBatchAPIUploadAndFindFile(t *testing.T) {
	t.Parallel()
	w, srv := newBatchWire(t, "/v1")
	w.pageMax = 2
	a := batchAPIFor(t, srv)
	content := `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}` + "\n" + `{"custom_id":"b"}` + "\n"
	var names []string
	for i := range 5 {
		name := fmt.Sprintf("qaqueue-b1-r0-s1-c%d.jsonl", i)
		names = append(names, name)
		f, err := a.UploadFile(ctxT(t), name, strings.NewReader(content+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		if f.ID == "" || f.Filename != name || f.Purpose != "batch" || f.Bytes != int64(len(content)+1) {
			t.Errorf("uploaded %+v", f)
		}
	}
	req, h := w.lastRequest()
	if req != "POST /v1/files" || h.Get("Authorization") != "Bearer sk-test" || !strings.HasPrefix(h.Get("Content-Type"), "multipart/form-data; boundary=") {
		t.Errorf("upload request %s %v", req, h)
	}
	if got := string(w.fileAt(4).Content); got != content+"4" {
		t.Errorf("the provider received %q, want %q", got, content+"4")
	}
	// The oldest file is on the last of three pages.
	f, err := a.FindFile(ctxT(t), names[0])
	if err != nil || f == nil || f.ID != w.fileAt(0).ID || f.Filename != names[0] {
		t.Fatalf("FindFile(oldest) = %+v, %v; want %s", f, err, w.fileAt(0).ID)
	}
	if req, _ := w.lastRequest(); !strings.Contains(req, "purpose=batch") || !strings.Contains(req, "after=") {
		t.Errorf("last list request %s: want purpose=batch, paged with after", req)
	}
	if f, err := a.FindFile(ctxT(t), "qaqueue-none.jsonl"); f != nil || err != nil {
		t.Errorf("FindFile(unknown) = %+v, %v; want nil, nil", f, err)
	}
	rc, err := a.OpenFile(ctxT(t), w.fileAt(2).ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || string(got) != content+"2" {
		t.Errorf("OpenFile = %q, %v", got, err)
	}
}

// genReader yields n deterministic JSONL bytes and samples the heap every
// sampleEvery bytes, keeping the peak HeapInuse.
type genReader struct {
	n, off, nextSample, sampleEvery int64
	line                            []byte
	peak                            uint64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	if g.off >= g.nextSample {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		g.peak = max(g.peak, ms.HeapInuse)
		g.nextSample += g.sampleEvery
	}
	p = p[:min(int64(len(p)), g.n-g.off)]
	for i := range p {
		p[i] = g.line[(g.off+int64(i))%int64(len(g.line))]
	}
	g.off += int64(len(p))
	return len(p), nil
}

// TestBatchAPIUploadStreams: a 50 MB upload arrives byte for byte and
// raises neither the live heap nor the bytes allocated by more than a few
// MB (the server double, in this process, streams it too). Not parallel:
// it measures the process's heap.
func TestBatchAPIUploadStreams(t *testing.T) {
	w, srv := newBatchWire(t, "/v1")
	a := batchAPIFor(t, srv)
	const size = 50 << 20
	line := []byte(`{"custom_id":"qa-0","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"content":"hi","role":"user"}],"model":"gpt-4o-mini"}}` + "\n")
	want := sha256.New()
	if _, err := io.Copy(want, &genReader{n: size, line: line, sampleEvery: size}); err != nil {
		t.Fatal(err)
	}
	// Warm the connection and the code paths first.
	if _, err := a.UploadFile(ctxT(t), "warm.jsonl", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g := &genReader{n: size, line: line, sampleEvery: 1 << 20}
	f, err := a.UploadFile(ctxT(t), "big.jsonl", g)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if f.Bytes != size || w.fileAt(1).Sum != [sha256.Size]byte(want.Sum(nil)) {
		t.Fatalf("the provider received %d bytes (%x), want %d bytes (%x)", f.Bytes, w.fileAt(1).Sum, size, want.Sum(nil))
	}
	const bound = 8 << 20
	heap := int64(g.peak) - int64(before.HeapInuse)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("50 MB upload: peak HeapInuse +%.1f MB, allocated %.1f MB", float64(heap)/(1<<20), float64(allocated)/(1<<20))
	if heap > bound || allocated > bound {
		t.Errorf("a 50 MB upload raised the heap by %d bytes and allocated %d: it is buffered, not streamed (bound %d)", heap, allocated, bound)
	}
}

// failingReader fails after its first read.
type failingReader struct{ done bool }

var errRender = errors.New("render failed")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.done {
		return 0, errRender
	}
	f.done = true
	return copy(p, `{"custom_id":"a"}`+"\n"), nil
}

func TestBatchAPIUploadFailures(t *testing.T) {
	t.Parallel()
	w, srv := newBatchWire(t, "/v1")
	a := batchAPIFor(t, srv)
	w.fail("POST /files", http.StatusUnauthorized, nil, `{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}`)
	_, err := a.UploadFile(ctxT(t), "x.jsonl", strings.NewReader(strings.Repeat("y", 1<<20)))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != "invalid_api_key" || ae.Retryable() {
		t.Errorf("a refused upload gave %v; want a permanent 401 APIError", err)
	}
	if f := w.fileAt(0); f != nil {
		t.Errorf("a refused upload was stored: %+v", f)
	}
	// Its request may reach the double after this returns: it comes last.
	_, err = a.UploadFile(ctxT(t), "x.jsonl", &failingReader{})
	if !errors.Is(err, errRender) || errors.As(err, &ae) {
		t.Errorf("a failing body gave %v; want its own error, not an APIError", err)
	}
}

func TestBatchAPIBatches(t *testing.T) {
	t.Parallel()
	w, srv := newBatchWire(t, "/v1")
	w.pageMax = 2
	a := batchAPIFor(t, srv)
	f, err := a.UploadFile(ctxT(t), "in.jsonl", strings.NewReader("{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	meta := func(batch, chunk string) map[string]string {
		return map[string]string{"qaqueue_batch": batch, "qaqueue_round": "0", "qaqueue_stage": "1", "qaqueue_chunk": chunk}
	}
	var created []*ProviderBatch
	for _, m := range []map[string]string{meta("b1", "0"), meta("b1", "1"), meta("b1", "1"), meta("b2", "0"), meta("b2", "1"), meta("b3", "0")} {
		b, err := a.CreateBatch(ctxT(t), f.ID, m)
		if err != nil {
			t.Fatal(err)
		}
		created = append(created, b)
	}
	first := created[0]
	if first.ID == "" || first.Status != "validating" || first.InputFileID != f.ID || first.CompletionWindow != "24h" ||
		first.Metadata["qaqueue_batch"] != "b1" || first.CreatedAt.IsZero() {
		t.Errorf("created %+v", first)
	}
	if ep := w.batchField(0, "endpoint"); ep != "/v1/chat/completions" {
		t.Errorf("batch endpoint %v", ep)
	}
	// The newest of two matches, on the second of three pages.
	got, err := a.FindBatch(ctxT(t), map[string]string{"qaqueue_batch": "b1", "qaqueue_chunk": "1"})
	if err != nil || got == nil || got.ID != created[2].ID {
		t.Fatalf("FindBatch = %+v, %v; want %s", got, err, created[2].ID)
	}
	got, err = a.FindBatch(ctxT(t), meta("b1", "0")) // on the last page
	if err != nil || got == nil || got.ID != first.ID {
		t.Fatalf("FindBatch(oldest) = %+v, %v; want %s", got, err, first.ID)
	}
	if got, err := a.FindBatch(ctxT(t), meta("b9", "0")); got != nil || err != nil {
		t.Errorf("FindBatch(none) = %+v, %v", got, err)
	}

	w.mu.Lock()
	(*w.batches[0])["status"], (*w.batches[0])["output_file_id"], (*w.batches[0])["error_file_id"] = "completed", "file-out", "file-err"
	(*w.batches[0])["request_counts"] = map[string]any{"total": 10, "completed": 8, "failed": 2}
	(*w.batches[0])["errors"] = map[string]any{"object": "list", "data": []any{map[string]any{"code": "invalid_json_line", "message": "bad line", "line": 3}}}
	w.mu.Unlock()
	got, err = a.GetBatch(ctxT(t), first.ID)
	if err != nil || got.Status != "completed" || got.OutputFileID != "file-out" || got.ErrorFileID != "file-err" ||
		got.Counts.Total != 10 || got.Counts.Completed != 8 || got.Counts.Failed != 2 ||
		!slices.Equal(got.Errors, []string{"invalid_json_line: bad line (line 3)"}) {
		t.Errorf("GetBatch = %+v, %v", got, err)
	}
	got, err = a.CancelBatch(ctxT(t), created[1].ID)
	if err != nil || got.Status != "cancelling" {
		t.Errorf("CancelBatch = %+v, %v", got, err)
	}
}

// TestBatchAPIErrorsAreLiveErrors: the provider's answers are typed as a
// live call's: 429 with Retry-After, 5xx retryable, 4xx permanent, a 404 on
// delete done, a dead server a connection error; each counted.
func TestBatchAPIErrorsAreLiveErrors(t *testing.T) {
	t.Parallel()
	w, srv := newBatchWire(t, "/v1")
	reg := prometheus.NewRegistry()
	c := newClient(t, Config{APIBase: srv.URL + "/v1", APIKey: "sk-test"}, Deps{Registerer: reg})
	a, err := c.BatchAPI()
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.UploadFile(ctxT(t), "in.jsonl", strings.NewReader("{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.CreateBatch(ctxT(t), f.ID, map[string]string{"qaqueue_batch": "b1"})
	if err != nil {
		t.Fatal(err)
	}

	w.fail("GET /batches/{id}", http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}},
		`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)
	_, err = a.GetBatch(ctxT(t), b.ID)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 429 || ae.RetryAfter != 7*time.Second || !ae.Retryable() || !Retryable(err) {
		t.Errorf("429: %v; want a retryable APIError asking for 7s", err)
	}
	if d, ok := RetryAfter(err); !ok || d != 7*time.Second {
		t.Errorf("RetryAfter = %s, %v", d, ok)
	}
	w.fail("POST /batches", http.StatusInternalServerError, nil, `<html>oops</html>`)
	if _, err := a.CreateBatch(ctxT(t), f.ID, nil); !errors.As(err, &ae) || ae.Status != 500 || !ae.Retryable() {
		t.Errorf("500: %v; want a retryable APIError", err)
	}
	if _, err := a.CreateBatch(ctxT(t), "file-none", nil); !errors.As(err, &ae) || ae.Status != 404 || ae.Retryable() {
		t.Errorf("unknown input file: %v; want a permanent 404", err)
	}
	if _, err := a.OpenFile(ctxT(t), "file-none"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("OpenFile(unknown): %v; want a 404 APIError", err)
	}
	if err := a.DeleteFile(ctxT(t), f.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteFile(ctxT(t), f.ID); err != nil {
		t.Errorf("deleting a deleted file: %v; a 404 is done", err)
	}
	if got, _ := a.FindFile(ctxT(t), "in.jsonl"); got != nil {
		t.Errorf("deleted file still listed: %+v", got)
	}
	w.fail("DELETE /files/{id}", http.StatusBadGateway, nil, "")
	if err := a.DeleteFile(ctxT(t), "file-x"); !errors.As(err, &ae) || ae.Status != 502 || !ae.Retryable() {
		t.Errorf("502 on delete: %v", err)
	}
	if got := counter(t, c.metrics.batchCalls.WithLabelValues("get_batch", "rate_limited")); got != 1 {
		t.Errorf("rate-limited get_batch calls = %v, want 1", got)
	}
	if got := counter(t, c.metrics.batchCalls.WithLabelValues("delete_file", "ok")); got != 2 {
		t.Errorf("ok delete_file calls = %v, want 2", got)
	}
	srv.Close()
	if _, err := a.GetBatch(ctxT(t), b.ID); !errors.As(err, &ae) || ae.Code != CodeConnection || !ae.Retryable() {
		t.Errorf("dead server: %v; want a retryable connection APIError", err)
	}
}

func TestBatchAPIProviders(t *testing.T) {
	t.Parallel()
	for _, model := range []string{"anthropic/claude-3-5-sonnet", "ollama/llama3", "mistral/mistral-small"} {
		_, err := NewBatchAPI(Config{Model: model, APIBase: "http://127.0.0.1:9", APIKey: "k"})
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "no OpenAI-compatible batch API") {
			t.Errorf("%s: %v; want a ConfigError", model, err)
		}
	}
	// Azure: files and batches under the resource's /openai root, its key
	// header and api-version, and the endpoint Azure names.
	w, srv := newBatchWire(t, "/openai")
	a, err := NewBatchAPI(Config{Model: "azure/my-deploy", APIBase: srv.URL, APIKey: "az-key", AzureAPIVersion: "2024-10-21"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.UploadFile(ctxT(t), "in.jsonl", strings.NewReader("{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateBatch(ctxT(t), f.ID, nil); err != nil {
		t.Fatal(err)
	}
	req, h := w.lastRequest()
	if req != "POST /openai/batches?api-version=2024-10-21" || h.Get("Api-Key") != "az-key" || h.Get("Authorization") != "" {
		t.Errorf("azure request %s, headers %v", req, h)
	}
	if ep := w.batchField(0, "endpoint"); ep != "/chat/completions" || a.Endpoint() != ep {
		t.Errorf("azure endpoint %v, Endpoint() %s", ep, a.Endpoint())
	}
}
