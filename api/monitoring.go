package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// monitoringRoot is where asynqmon is mounted. It must equal the path the
// browser sees (asynqmon wants the full, unstripped path).
const monitoringRoot = "/monitoring"

// newMonitor builds the asynqmon dashboard. It opens two Redis pools of its
// own; Shutdown closes them. spec reads a job's spec (nil when the job is
// gone), which its task's payload does not hold.
func newMonitor(opt asynq.RedisConnOpt, readOnly bool, limit int, prometheusURL string, spec func(id string) *jobs.Spec) *asynqmon.HTTPHandler {
	return asynqmon.New(asynqmon.Options{
		RootPath:          monitoringRoot,
		RedisConnOpt:      opt,
		ReadOnly:          readOnly,
		PrometheusAddress: prometheusURL,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(func(taskType string, payload []byte) string {
			return formatPayload(taskType, payload, limit, spec)
		}),
		ResultFormatter: asynqmon.ResultFormatterFunc(func(taskType string, result []byte) string { return formatResult(taskType, result, limit) }),
	})
}

// googleFonts matches the stylesheet links of asynqmon's index page to
// Google Fonts (Roboto, Material Icons).
var googleFonts = regexp.MustCompile(`<link rel="stylesheet" href="https://fonts\.googleapis\.com/[^"]*"/?>`)

// offlineIndex serves asynqmon with its index page rewritten to load nothing
// from another host. asynqmon links Google Fonts, which an offline install
// cannot reach (console errors, a slow first paint) and which the dashboard's
// policy would have to allow (monitoringCSP). Without them the UI uses the
// rest of its font stack (Helvetica, Arial, sans-serif); its icons are SVG.
//
// asynqmon renders the index for every path that is neither a file nor an
// API route, always the same bytes (its template data are fixed when it is
// built), so the page is recognised by its bytes (indexWriter) rather than
// by guessing asynqmon's routing.
type offlineIndex struct {
	next    http.Handler
	page    []byte // the index as asynqmon writes it; nil: serve unchanged
	offline []byte // the index without the font links
}

func newOfflineIndex(h http.Handler) *offlineIndex {
	o := &offlineIndex{next: h}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, monitoringRoot+"/", nil))
	if rec.Code == http.StatusOK && googleFonts.Match(rec.Body.Bytes()) {
		o.page = rec.Body.Bytes()
		o.offline = googleFonts.ReplaceAll(o.page, nil)
	}
	return o
}

func (o *offlineIndex) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if o.page == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		o.next.ServeHTTP(w, r)
		return
	}
	iw := &indexWriter{ResponseWriter: w, page: o.page}
	o.next.ServeHTTP(iw, r)
	iw.finish(o.offline)
}

// indexWriter passes a response through unless its body is, byte for byte,
// page: it holds back a 200 and the bytes that match page so far, and
// releases them at the first byte that differs (a script, JSON, an error).
type indexWriter struct {
	http.ResponseWriter
	page    []byte
	matched int  // bytes of page written and held back
	status  int  // a held-back WriteHeader(200), or 0
	through bool // the body is not page: everything passes
}

func (w *indexWriter) WriteHeader(code int) {
	if !w.through && code == http.StatusOK && w.matched == 0 {
		w.status = code
		return
	}
	_ = w.release() // an error shows again on the next write
	w.ResponseWriter.WriteHeader(code)
}

func (w *indexWriter) Write(p []byte) (int, error) {
	if !w.through && bytes.HasPrefix(w.page[w.matched:], p) {
		w.matched += len(p)
		return len(p), nil
	}
	if err := w.release(); err != nil {
		return 0, err
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *indexWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// release stops holding back, writing what was held.
func (w *indexWriter) release() error {
	if w.through {
		return nil
	}
	w.through = true
	if w.status != 0 {
		w.ResponseWriter.WriteHeader(w.status)
	}
	if w.matched == 0 {
		return nil
	}
	_, err := w.ResponseWriter.Write(w.page[:w.matched])
	return err
}

// finish ends the response: offline in place of a whole page, else what was
// held. A write error means the client left; the handler has nobody to tell.
func (w *indexWriter) finish(offline []byte) {
	if w.through || w.matched < len(w.page) {
		_ = w.release()
		return
	}
	w.through = true
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(offline)))
	w.ResponseWriter.WriteHeader(http.StatusOK)
	_, _ = w.ResponseWriter.Write(offline)
}

// connOptFrom derives asynqmon's connection from a go-redis client.
func connOptFrom(rdb redis.UniversalClient) asynq.RedisConnOpt {
	c, ok := rdb.(*redis.Client)
	if !ok {
		return nil
	}
	o := c.Options()
	return asynq.RedisClientOpt{
		Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolSize: 4, TLSConfig: o.TLSConfig,
	}
}

// formatPayload shows a task readably, cut to limit bytes: a job's id and,
// from its record's spec, its question, owner and options; a batch task's
// batch.
func formatPayload(taskType string, payload []byte, limit int, spec func(id string) *jobs.Spec) string {
	if v, ok := formatBatchPayload(taskType, payload); ok {
		return v // batch items: batch id and custom_id (batch_stream.go)
	}
	if taskType != jobs.TaskTypePredict {
		return truncate(printable(string(payload)), limit)
	}
	p, err := jobs.ParsePayload(payload)
	if err != nil {
		return "unreadable payload: " + truncate(printable(string(payload)), 200)
	}
	view := map[string]any{"job_id": p.JobID}
	s := spec(p.JobID)
	if s == nil {
		return indent(view)
	}
	view["question"] = truncate(printable(s.Question()), limit)
	if s.Owner != "" {
		view["owner"] = s.Owner
	}
	// The options set, each by its name in a request: an option added to
	// jobs.Options shows without a line here.
	if b, err := json.Marshal(s.Options); err == nil {
		_ = json.Unmarshal(b, &view) // adds to view
	}
	return indent(view)
}

// formatResult shows a task result: the answer (and its short fields)
// readably, cut to limit bytes.
func formatResult(_ string, result []byte, limit int) string {
	if len(result) == 0 {
		return ""
	}
	var r jobs.Result
	if err := json.Unmarshal(result, &r); err != nil || r.Outputs == nil {
		return truncate(printable(string(result)), limit)
	}
	view := map[string]any{"answer": truncate(printable(r.Answer("answer")), limit)}
	for _, f := range []string{"question_type", "key_concepts"} {
		if v := r.Answer(f); v != "" {
			view[f] = truncate(printable(v), 512)
		}
	}
	view["latency_seconds"] = r.LatencySeconds
	view["model"] = r.Provenance.Model
	view["cache_hit"] = r.Provenance.CacheHit
	return indent(view)
}

func indent(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return "unprintable"
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// printable folds newlines and tabs into spaces (asynqmon's UI would call a
// value holding them non-printable) and drops other control characters.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			return -1
		}
		return r
	}, s)
}

// truncate cuts s to at most limit bytes on a rune boundary, marking the cut.
func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "… (truncated)"
}
