package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
)

// pipeUpload is an upload whose body the test writes as it goes.
type pipeUpload struct {
	w    *io.PipeWriter
	done chan pipeAnswer
}

type pipeAnswer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// startUpload posts a JSONL batch with key ("" for none) whose body comes
// from the returned pipe.
func (b *bundle) startUpload(t *testing.T, key string) *pipeUpload {
	t.Helper()
	r, w := io.Pipe()
	p := &pipeUpload{w: w, done: make(chan pipeAnswer, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/v1/batches", r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	go func() {
		defer cancel()
		resp, err := b.http.Do(req)
		if err != nil {
			p.done <- pipeAnswer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		p.done <- pipeAnswer{status: resp.StatusCode, header: resp.Header, body: body, err: err}
	}()
	t.Cleanup(func() { _ = w.CloseWithError(io.ErrUnexpectedEOF) })
	return p
}

// write sends s, failing the test if the server stopped reading.
func (p *pipeUpload) write(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(p.w, s); err != nil {
		t.Fatalf("write upload: %v", err)
	}
}

// finish ends the body (after s) and returns the answer.
func (p *pipeUpload) finish(t *testing.T, s string) pipeAnswer {
	t.Helper()
	p.write(t, s)
	_ = p.w.Close()
	return p.answer(t)
}

func (p *pipeUpload) answer(t *testing.T) pipeAnswer {
	t.Helper()
	select {
	case a := <-p.done:
		if a.err != nil {
			t.Fatalf("upload: %v", a.err)
		}
		return a
	case <-time.After(patience):
		t.Fatal("no answer to the upload")
		return pipeAnswer{}
	}
}

func lines(from, to int) string {
	var sb strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&sb, `{"custom_id":"c%d","question":"question %d?"}`+"\n", i, i)
	}
	return sb.String()
}

// batchKeys lists the Redis keys of batch records (qa:batch:<id>).
func (b *bundle) batchKeys(t *testing.T, pattern string) []string {
	t.Helper()
	keys, err := b.db.Client.Keys(context.Background(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestBatchUploadRefusesALongLineWhileReading: a line longer than
// MAX_INPUT_BYTES plus the room for custom_id is a problem naming the line,
// the variable and the limit; so is an array item; lines up to the limit
// pass, if their inputs take at most MAX_INPUT_BYTES. (That it is refused
// without being held is TestUploadMemory's, in internal/faulttest, on the
// built binary.)
func TestBatchUploadRefusesALongLineWhileReading(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{MaxInputBytes: 100, MaxQuestionChars: 200_000}})
	hdr := http.Header{"Content-Type": {"application/x-ndjson"}}
	long := strings.Repeat("x", 100_000)
	// Within MAX_INPUT_BYTES + 4 KiB: a custom_id of 256 characters escaped
	// as surrogate pairs, 3 KiB.
	fits := `{"custom_id":"` + strings.Repeat(`\ud83d\ude00`, 256) + `","question":"fine"}`
	for name, body := range map[string]string{
		"jsonl": jsonl(`{"question":"fine"}`, `{"question":"`+long+`"}`, fits),
		"array": `[{"question":"fine"},` + "\n" + `{"question":"` + long + `"}, ` + fits + `]`,
	} {
		resp, out := b.do(t, "POST", "/v1/batches", body, hdr)
		e := decode[v1Error](t, out)
		if resp.StatusCode != http.StatusUnprocessableEntity || len(e.Error.Problems) != 1 || e.Error.Problems[0].Line != 2 {
			t.Fatalf("%s: %d %.500s", name, resp.StatusCode, out)
		}
		for _, want := range []string{"line 2", "MAX_INPUT_BYTES (100)", "4196 bytes"} {
			if !strings.Contains(e.Error.Message, want) {
				t.Errorf("%s: message %q does not say %q", name, e.Error.Message, want)
			}
		}
	}
	if keys := b.batchKeys(t, "qa:batch*"); len(keys) != 0 {
		t.Fatalf("a refused upload left %v", keys)
	}
	b.upload(t, jsonl(fits), "application/x-ndjson", nil)
	// A line within the cap whose inputs take more than MAX_INPUT_BYTES.
	resp, out := b.do(t, "POST", "/v1/batches", jsonl(`{"inputs":{"question":"`+strings.Repeat("y", 200)+`"}}`), hdr)
	if e := decode[v1Error](t, out); resp.StatusCode != http.StatusUnprocessableEntity || len(e.Error.Problems) != 1 ||
		e.Error.Problems[0].Field != "inputs" || e.Error.Problems[0].Reason != "larger than MAX_INPUT_BYTES (100 bytes as JSON, got 215)" {
		t.Fatalf("inputs over MAX_INPUT_BYTES: %d %s", resp.StatusCode, out)
	}
}

// TestBatchUploadIsStoredAsItIsReadAndInvisibleUntilValid: items reach
// Redis in chunks while the body is still arriving, under a batch no read
// shows and whose keys expire by themselves; a problem anywhere removes it.
func TestBatchUploadIsStoredAsItIsReadAndInvisibleUntilValid(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ctx := context.Background()
	for _, valid := range []bool{false, true} {
		p := b.startUpload(t, "")
		p.write(t, lines(0, 2500))
		var items []string
		testwait.Until(t, "items stored while the upload goes on", func() bool {
			items = b.batchKeys(t, "qa:batch:*:items")
			return len(items) == 1
		})
		id := strings.TrimSuffix(strings.TrimPrefix(items[0], "qa:batch:"), ":items")
		if st, err := b.db.Client.HGet(ctx, jobs.BatchKey(id), "status").Result(); err != nil || st != "validating" {
			t.Fatalf("status while uploading: %q %v", st, err)
		}
		for _, k := range []string{jobs.BatchKey(id), items[0]} {
			if ttl, err := b.db.Client.PTTL(ctx, k).Result(); err != nil || ttl <= 0 {
				t.Fatalf("%s has no TTL (%v, %v): a crash would leave it", k, ttl, err)
			}
		}
		if resp, out := b.do(t, "GET", "/v1/batches/"+id, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET a batch still uploading: %d %s", resp.StatusCode, out)
		}
		if _, out := b.do(t, "GET", "/v1/batches", nil, nil); strings.Contains(string(out), id) {
			t.Fatalf("list shows a batch still uploading: %s", out)
		}
		if !valid {
			a := p.finish(t, lines(2500, 2600)+"{broken\n")
			if a.status != http.StatusUnprocessableEntity || !strings.Contains(string(a.body), `"line":2601`) {
				t.Fatalf("bad upload: %d %s", a.status, a.body)
			}
			if keys := b.batchKeys(t, "qa:batch*"); len(keys) != 0 {
				t.Fatalf("a refused upload left %v", keys)
			}
			continue
		}
		a := p.finish(t, lines(2500, 2600))
		if a.status != http.StatusAccepted || !strings.Contains(string(a.body), id) {
			t.Fatalf("upload: %d %s", a.status, a.body)
		}
		if v := b.batch(t, id, ""); v.RequestCounts.Total != 2600 || v.Status != "in_progress" {
			t.Fatalf("batch = %+v", v)
		}
	}
}

// TestBatchUploadsPerProcessAndPerKey: beyond BATCH_UPLOADS_PER_KEY uploads
// in progress, a key gets 429 naming it, with Retry-After; beyond
// BATCH_UPLOADS_PER_PROCESS, anyone does; an upload that ends frees its
// place.
func TestBatchUploadsPerProcessAndPerKey(t *testing.T) {
	t.Parallel()
	const carolKey = "carol-secret-key-3a9e0d27"
	cfg := secured(t, api.Config{BatchUploadsPerProcess: 2, BatchUploadsPerKey: 1})
	cfg.APIKeys = append(cfg.APIKeys, mustKeys(t, "carol:"+carolKey)...)
	b := setup(t, options{api: cfg})
	ctx := context.Background()
	holding := func(who string) {
		testwait.Until(t, who+"'s upload to be admitted", func() bool {
			return b.db.Client.ZCard(ctx, "qa:uploads:"+who).Val() == 1
		})
	}
	refused := func(key, variable string) {
		t.Helper()
		resp, out := b.do(t, "POST", "/v1/batches", jsonl(`{"question":"q"}`), with(bearer(key), "Content-Type", "application/x-ndjson"))
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(out), variable) || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("upload beyond %s: %d %s (Retry-After %q)", variable, resp.StatusCode, out, resp.Header.Get("Retry-After"))
		}
	}
	alice := b.startUpload(t, aliceKey)
	alice.write(t, lines(0, 10))
	holding("alice")
	refused(aliceKey, "BATCH_UPLOADS_PER_KEY")
	bob := b.startUpload(t, bobKey)
	bob.write(t, lines(0, 10))
	holding("bob")
	refused(carolKey, "BATCH_UPLOADS_PER_PROCESS")
	if a := alice.finish(t, ""); a.status != http.StatusAccepted {
		t.Fatalf("alice's upload: %d %s", a.status, a.body)
	}
	b.upload(t, jsonl(`{"question":"q"}`), "application/x-ndjson", bearer(carolKey))
	if a := bob.finish(t, ""); a.status != http.StatusAccepted {
		t.Fatalf("bob's upload: %d %s", a.status, a.body)
	}
}

// TestBatchUploadMinimumRate: an upload's body may take longer than the
// read timeout of other requests as long as it keeps to
// BATCH_UPLOAD_MIN_RATE; one that trickles slower gets 408 naming it. Other
// bodies keep a bounded read time.
func TestBatchUploadMinimumRate(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{ReadTimeout: 100 * time.Millisecond, BatchUploadMinRate: 1000, BatchUploadGrace: time.Second}})

	// Several times the minimum, for at least three read timeouts (30
	// writes 10 ms apart, against a ReadTimeout of 100 ms): accepted.
	p := b.startUpload(t, "")
	for i := range 30 {
		p.write(t, fmt.Sprintf(`{"custom_id":"slow-%d","question":"%s"}`+"\n", i, strings.Repeat("s", 50)))
		time.Sleep(10 * time.Millisecond) // the client's pace, not a wait
	}
	if a := p.finish(t, ""); a.status != http.StatusAccepted {
		t.Fatalf("slow upload above the minimum rate: %d %s", a.status, a.body)
	}

	// A few bytes, then nothing: 408 once grace and credit run out.
	p = b.startUpload(t, "")
	p.write(t, `{"questi`)
	a := p.answer(t)
	e := decode[v1Error](t, a.body)
	if a.status != http.StatusRequestTimeout || e.Error.Code != "upload_too_slow" || !strings.Contains(e.Error.Message, "BATCH_UPLOAD_MIN_RATE (1000 bytes/s") {
		t.Fatalf("trickling upload: %d %s", a.status, a.body)
	}
	if keys := b.batchKeys(t, "qa:batch:*:items"); len(keys) != 1 {
		t.Fatalf("batches after one accepted and one refused upload: %v", keys)
	}

	// Another request's body that stalls is cut at ReadTimeout.
	r, w := io.Pipe()
	defer w.Close()
	go func() { _, _ = io.WriteString(w, `{"question":`) }()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/v1/jobs", r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		t.Fatalf("stalled job body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Fatalf("stalled job body: %d, want a 4xx", resp.StatusCode)
	}
}

// TestBatchUploadErrorsSayWhatToDo: a form upload (curl -F) is told to send
// the raw body; an empty upload is called empty; a blank question is
// refused with the words POST /v1/jobs uses.
func TestBatchUploadErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "q.jsonl")
	_, _ = io.WriteString(fw, jsonl(`{"question":"q"}`))
	_ = mw.Close()
	resp, out := b.do(t, "POST", "/v1/batches", form.Bytes(), http.Header{"Content-Type": {mw.FormDataContentType()}})
	hint := decode[v1Error](t, out).Error.Message
	if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(hint, "--data-binary @q.jsonl") {
		t.Errorf("multipart upload: %d %s", resp.StatusCode, out)
	}
	// The same body labelled as JSONL (curl -H 'Content-Type:
	// application/x-ndjson' -F …) gets the same words, as a problem of line 1.
	resp, out = b.do(t, "POST", "/v1/batches", form.Bytes(), http.Header{"Content-Type": {"application/x-ndjson"}})
	if e := decode[v1Error](t, out); resp.StatusCode != http.StatusUnprocessableEntity || len(e.Error.Problems) == 0 ||
		e.Error.Problems[0].Line != 1 || e.Error.Problems[0].Reason != hint {
		t.Errorf("multipart body sent as JSONL: %d %s, want line 1's problem to read %q", resp.StatusCode, out, hint)
	}
	for _, body := range []string{"", "\n \n", "[ ]"} {
		resp, out := b.do(t, "POST", "/v1/batches", body, http.Header{"Content-Type": {"application/x-ndjson"}})
		e := decode[v1Error](t, out)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(e.Error.Message, "empty") || strings.Contains(e.Error.Message, "line 0") {
			t.Errorf("upload %q: %d %s", body, resp.StatusCode, out)
		}
	}
	resp, out = b.do(t, "POST", "/v1/batches", jsonl(`{"question":"fine"}`, `{"question":"  \t\n "}`), http.Header{"Content-Type": {"application/x-ndjson"}})
	if e := decode[v1Error](t, out); resp.StatusCode != http.StatusUnprocessableEntity || len(e.Error.Problems) != 1 ||
		e.Error.Problems[0].Line != 2 || e.Error.Problems[0].Field != "question" || e.Error.Problems[0].Reason != "String should not be blank (only whitespace)" {
		t.Errorf("blank question: %d %s", resp.StatusCode, out)
	}
	// A missing question reads as it does on /v1/jobs and the seed's endpoints.
	resp, out = b.do(t, "POST", "/v1/batches", jsonl(`{"question":"fine"}`, `{"custom_id":"x"}`), http.Header{"Content-Type": {"application/x-ndjson"}})
	if e := decode[v1Error](t, out); resp.StatusCode != http.StatusUnprocessableEntity || len(e.Error.Problems) != 1 ||
		e.Error.Problems[0].Field != "question" || e.Error.Problems[0].Reason != "Field required" {
		t.Errorf("missing question: %d %s", resp.StatusCode, out)
	}
}

// TestBatchQuotaPerKey: a key at BATCH_QUOTA_ITEMS_PER_KEY or
// BATCH_QUOTA_BYTES_PER_KEY gets 429 naming it, and nothing of the refused
// upload is kept, while another key still gets 202; deleting a batch frees
// its share; a repeated upload (same Idempotency-Key) is answered with its
// batch, not counted again. (A batch that expires frees it too: jobs' TestBatchQuota.)
func TestBatchQuotaPerKey(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{}), batch: batches.Config{QuotaItems: 5, QuotaBytes: 2000}})
	b.startBatchWorker(t, echoRunner, worker.Config{})
	ct := func(key string) http.Header { return with(bearer(key), "Content-Type", "application/x-ndjson") }
	quota := func(key, body, variable string) {
		t.Helper()
		before := len(b.batchKeys(t, "qa:batch:*:items"))
		resp, out := b.do(t, "POST", "/v1/batches", body, ct(key))
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(out), variable) {
			t.Fatalf("upload over %s: %d %s", variable, resp.StatusCode, out)
		}
		if after := len(b.batchKeys(t, "qa:batch:*:items")); after != before {
			t.Fatalf("a refused upload left keys: %d before, %d after", before, after)
		}
	}
	v := b.upload(t, lines(0, 3), "application/x-ndjson", bearer(aliceKey))
	quota(aliceKey, lines(0, 3), "BATCH_QUOTA_ITEMS_PER_KEY")
	other := b.upload(t, lines(0, 3), "application/x-ndjson", bearer(bobKey))
	b.waitBatch(t, v.ID, aliceKey, "completed")
	// Bytes: one question of 1,900 bytes is over what alice has left.
	quota(aliceKey, jsonl(`{"question":"`+strings.Repeat("b", 1900)+`"}`), "BATCH_QUOTA_BYTES_PER_KEY")

	// Deleting frees the share at once.
	if resp, _ := b.do(t, "DELETE", "/v1/batches/"+v.ID, nil, bearer(aliceKey)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	first := b.upload(t, lines(0, 5), "application/x-ndjson", with(bearer(aliceKey), "Idempotency-Key", "k5"))
	quota(aliceKey, lines(0, 1), "BATCH_QUOTA_ITEMS_PER_KEY")
	// At the quota, a repeated upload is still answered with its batch.
	resp, out := b.do(t, "POST", "/v1/batches", lines(0, 5), with(ct(aliceKey), "Idempotency-Key", "k5"))
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Idempotent-Replayed") != "true" || decode[batchView](t, out).ID != first.ID {
		t.Fatalf("replay at the quota: %d %s", resp.StatusCode, out)
	}
	b.upload(t, lines(0, 2), "application/x-ndjson", bearer(bobKey))
	b.waitBatch(t, other.ID, bobKey, "completed")
}

// stallRedis is a go-redis hook under which the commands (or pipelines) it
// matches get no answer: they wait until their context ends, as on a Redis that
// has stopped answering. A call without a deadline would wait for ever (the
// request's context ends only once its body has been read), so it gives up
// after stallGuard with errStalled: a hang guard, not a timing assertion.
type stallRedis struct{ match func(cmds []redis.Cmder) bool }

const stallGuard = patience / 4

var errStalled = errors.New("stallRedis: no answer, and the call had no deadline")

func (h stallRedis) stall(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(stallGuard):
		return errStalled
	}
}

func (stallRedis) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h stallRedis) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.match([]redis.Cmder{cmd}) {
			err := h.stall(ctx)
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (h stallRedis) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.match(cmds) {
			return h.stall(ctx)
		}
		return next(ctx, cmds)
	}
}

// scriptOp is the first argument of a Lua script call (the op of
// batches.Store's script), or "".
func scriptOp(cmd redis.Cmder) string {
	if name := cmd.Name(); name != "eval" && name != "evalsha" {
		return ""
	}
	args := cmd.Args()
	if n, ok := args[2].(int); ok && len(args) > 3+n {
		op, _ := args[3+n].(string)
		return op
	}
	return ""
}

// TestBatchUploadRedisStepsAreBounded: each Redis step of an upload (the
// quota read that opens it, each chunk of items stored while it is read)
// gets RedisTimeout, like every other request's Redis work: a Redis that
// stops answering gives 503, not an upload that hangs with its lease held.
func TestBatchUploadRedisStepsAreBounded(t *testing.T) {
	t.Parallel()
	for name, match := range map[string]func([]redis.Cmder) bool{
		"quota read": func(cmds []redis.Cmder) bool { return scriptOp(cmds[0]) == "usage" },
		"chunk of items": func(cmds []redis.Cmder) bool {
			for _, c := range cmds {
				if key, _ := c.Args()[1].(string); c.Name() == "hset" && strings.HasSuffix(key, ":items") {
					return true
				}
			}
			return false
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := redistest.New(t)
			stalled := redis.NewClient(db.Options())
			stalled.AddHook(stallRedis{match: match})
			t.Cleanup(func() { _ = stalled.Close() })
			b := setup(t, options{db: &redistest.DB{Addr: db.Addr, Index: db.Index, Client: stalled},
				api: api.Config{RedisTimeout: time.Second}, batch: batches.Config{QuotaItems: 1_000_000}})
			// More items than a chunk (batches.Config.StoreChunk, 1,000), so
			// one is stored while the body is read.
			resp, out := b.do(t, "POST", "/v1/batches", lines(0, 1500), http.Header{"Content-Type": {"application/x-ndjson"}})
			if e := decode[v1Error](t, out); resp.StatusCode != http.StatusServiceUnavailable || e.Error.Code != "unavailable" {
				t.Fatalf("upload with Redis stalled at its %s: %d %s", name, resp.StatusCode, out)
			}
			if keys := b.batchKeys(t, "qa:batch*"); len(keys) != 0 {
				t.Fatalf("the refused upload left %v", keys)
			}
		})
	}
}
