package fakelm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// BatchConfig shapes the fake's Files and Batches API. The zero value is
// OpenAI's limits with an instant turnaround and no faults.
type BatchConfig struct {
	// Validating, InProgress and Finalizing are how long each phase lasts on
	// the fake's clock (see Server.Advance). A batch moves on at most one
	// phase per retrieve (GET /v1/batches/{id}, or Server.StepBatches), once
	// its phase's time is up, so a poller sees every status. Default 0.
	Validating, InProgress, Finalizing time.Duration
	// Window is a batch's completion window on the fake's clock: expires_at
	// is created_at plus Window, and a batch not finalizing by then expires.
	// Default 24h, as the only window OpenAI offers.
	Window time.Duration
	// StallAfter, when positive, lets each batch answer at most this many
	// lines; it then stays in_progress until it is cancelled or expires, with
	// a partial output. Default 0: no stall.
	StallAfter int
	// FailEvery, when positive, fails every FailEvery-th line (1-based) with
	// FailStatus. Lines can also fail one by one with a directive in their
	// messages ([[fakelm:500]], [[fakelm:400]], [[fakelm:context]]).
	FailEvery int
	// FailStatus is the status of a FailEvery line. Default 500.
	FailStatus int
	// MalformedEvery, when positive, writes every MalformedEvery-th line's
	// output cut short (not valid JSON), as [[fakelm:truncate]] does for one.
	MalformedEvery int
	// TokenLimit, when positive, is the enqueued-token limit per model: a
	// batch whose prompt tokens, with those of the model's batches in
	// progress, pass it fails validation with token_limit_exceeded.
	TokenLimit int64
	// MaxRequests is the most request lines a batch may have. Default 50,000.
	MaxRequests int
	// MaxFileBytes is the largest upload. Default 200 MB (OpenAI's batch limit).
	MaxFileBytes int64
	// MaxStoredBytes bounds the bytes of the uploads kept at once (a
	// batch's output files are bounded by MaxBatches). Default 1 GiB.
	MaxStoredBytes int64
	// MaxFiles bounds the uploads kept at once. Default 10,000.
	MaxFiles int
	// MaxBatches bounds the batches kept; the oldest finished one is dropped
	// (with its output files) to make room. Default 10,000.
	MaxBatches int
	// OutageRequests, when positive, makes the first OutageRequests requests
	// to the files and batches endpoints fail with OutageStatus and
	// OutageRetryAfter (see also Server.FailBatchAPI).
	OutageRequests int
	// OutageStatus is an outage's status. Default 503.
	OutageStatus int
	// OutageRetryAfter is an outage's Retry-After. Default 1s.
	OutageRetryAfter time.Duration
	// OnCreate, when set, is called with each batch created, after it is
	// stored and before the creator gets its answer: a test can kill the
	// creator in the window between "created" and "recorded".
	OnCreate func(id string, metadata map[string]string)
}

func (c BatchConfig) withDefaults() BatchConfig {
	if c.Window == 0 {
		c.Window = 24 * time.Hour
	}
	if c.FailStatus == 0 {
		c.FailStatus = http.StatusInternalServerError
	}
	if c.MaxRequests == 0 {
		c.MaxRequests = 50000
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = 200 << 20
	}
	if c.MaxStoredBytes == 0 {
		c.MaxStoredBytes = 1 << 30
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = 10000
	}
	if c.MaxBatches == 0 {
		c.MaxBatches = 10000
	}
	if c.OutageStatus == 0 {
		c.OutageStatus = http.StatusServiceUnavailable
	}
	if c.OutageRetryAfter == 0 {
		c.OutageRetryAfter = time.Second
	}
	return c
}

func (c BatchConfig) validate() error {
	for name, d := range map[string]time.Duration{"Validating": c.Validating, "InProgress": c.InProgress,
		"Finalizing": c.Finalizing, "Window": c.Window, "OutageRetryAfter": c.OutageRetryAfter} {
		if d < 0 {
			return fmt.Errorf("validate config: Batch.%s must not be negative", name)
		}
	}
	for name, n := range map[string]int64{"StallAfter": int64(c.StallAfter), "FailEvery": int64(c.FailEvery),
		"MalformedEvery": int64(c.MalformedEvery), "TokenLimit": c.TokenLimit, "MaxRequests": int64(c.MaxRequests),
		"MaxFileBytes": c.MaxFileBytes, "MaxStoredBytes": c.MaxStoredBytes, "MaxFiles": int64(c.MaxFiles),
		"MaxBatches": int64(c.MaxBatches), "OutageRequests": int64(c.OutageRequests)} {
		if n < 0 {
			return fmt.Errorf("validate config: Batch.%s must not be negative", name)
		}
	}
	if c.FailStatus != 0 && (c.FailStatus < 400 || c.FailStatus > 599) {
		return fmt.Errorf("validate config: Batch.FailStatus %d is not 400-599", c.FailStatus)
	}
	if c.OutageStatus != 0 && (c.OutageStatus < 400 || c.OutageStatus > 599) {
		return fmt.Errorf("validate config: Batch.OutageStatus %d is not 400-599", c.OutageStatus)
	}
	return nil
}

// provider is the state of the Files and Batches API. Its lock is taken
// before Server.mu (answering a line takes that), never under it.
type provider struct {
	mu         sync.Mutex
	cfg        BatchConfig
	files      map[string]*file
	fileOrder  []string // by creation
	stored     int64    // bytes of uploads kept
	uploads    int      // uploads kept
	batches    map[string]*batch
	batchOrder []string // by creation
	outage     []Fault
	created    int
}

// Batch statuses, as OpenAI names them.
const (
	statusValidating = "validating"
	statusFailed     = "failed"
	statusInProgress = "in_progress"
	statusFinalizing = "finalizing"
	statusCompleted  = "completed"
	statusExpired    = "expired"
	statusCancelling = "cancelling"
	statusCancelled  = "cancelled"
)

// batch is one batch and its progress through its input.
type batch struct {
	id, inputFileID, endpoint, window, model string
	metadata                                 map[string]string
	status                                   string
	createdAt, phaseAt, expiresAt            time.Time
	at                                       map[string]time.Time // status → when it began
	errors                                   []batchError
	input                                    *blob
	lines                                    *lineReader // the next line to answer
	total, done, completed, failed           int
	stalled                                  []string // custom ids of lines left unanswered
	tokens                                   int64    // enqueued prompt tokens
	usage                                    usage
	out, errs                                *blob
	outputFileID, errorFileID                string
}

// batchError is one entry of a batch's errors object.
type batchError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int    `json:"line"`
}

func (b *batch) terminal() bool {
	switch b.status {
	case statusFailed, statusCompleted, statusExpired, statusCancelled:
		return true
	}
	return false
}

// enqueued is whether the batch's tokens count against the token limit.
func (b *batch) enqueued() bool {
	return b.status == statusInProgress || b.status == statusFinalizing || b.status == statusCancelling
}

// batchObject is OpenAI's Batch object.
type batchObject struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Model            string            `json:"model,omitempty"`
	Errors           any               `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           string            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        int64             `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    map[string]int    `json:"request_counts"`
	Usage            any               `json:"usage"`
	Metadata         map[string]string `json:"metadata"`
}

func (b *batch) object() batchObject {
	unix := func(status string) *int64 {
		if t, ok := b.at[status]; ok {
			u := t.Unix()
			return &u
		}
		return nil
	}
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	o := batchObject{
		ID: b.id, Object: "batch", Endpoint: b.endpoint, Model: b.model, InputFileID: b.inputFileID,
		CompletionWindow: b.window, Status: b.status, OutputFileID: str(b.outputFileID), ErrorFileID: str(b.errorFileID),
		CreatedAt: b.createdAt.Unix(), InProgressAt: unix(statusInProgress), ExpiresAt: b.expiresAt.Unix(),
		FinalizingAt: unix(statusFinalizing), CompletedAt: unix(statusCompleted), FailedAt: unix(statusFailed),
		ExpiredAt: unix(statusExpired), CancellingAt: unix(statusCancelling), CancelledAt: unix(statusCancelled),
		RequestCounts: map[string]int{"total": b.total, "completed": b.completed, "failed": b.failed},
		Usage: map[string]any{
			"input_tokens": b.usage.PromptTokens, "input_tokens_details": map[string]int64{"cached_tokens": 0},
			"output_tokens": b.usage.CompletionTokens, "output_tokens_details": map[string]int64{"reasoning_tokens": 0},
			"total_tokens": b.usage.TotalTokens,
		},
		Metadata: b.metadata,
	}
	if len(b.errors) > 0 {
		o.Errors = map[string]any{"object": "list", "data": b.errors}
	}
	return o
}

// batchRequest is the body of POST /v1/batches.
type batchRequest struct {
	InputFileID      string            `json:"input_file_id"`
	Endpoint         string            `json:"endpoint"`
	CompletionWindow string            `json:"completion_window"`
	Metadata         map[string]string `json:"metadata"`
}

const chatEndpoint = "/v1/chat/completions"

// createBatch answers POST /v1/batches: the request is checked at once,
// the input file's lines while the batch is validating.
func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	var req batchRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeParamError(w, http.StatusBadRequest, Fault{}, "decode request: "+err.Error(), "invalid_request_error", "", "")
		return
	}
	bad := func(param, msg string) {
		writeParamError(w, http.StatusBadRequest, Fault{}, msg, "invalid_request_error", "", param)
	}
	switch {
	case req.InputFileID == "":
		bad("input_file_id", "Missing required parameter: 'input_file_id'.")
		return
	case req.Endpoint != chatEndpoint:
		bad("endpoint", fmt.Sprintf("Invalid endpoint '%s': fakelm batches only %s.", req.Endpoint, chatEndpoint))
		return
	case req.CompletionWindow != "24h":
		bad("completion_window", fmt.Sprintf("Invalid completion_window '%s': the only supported value is '24h'.", req.CompletionWindow))
		return
	case len(req.Metadata) > 16:
		bad("metadata", "Invalid metadata: at most 16 key-value pairs.")
		return
	}
	for k, v := range req.Metadata {
		if len(k) > 64 || len(v) > 512 {
			bad("metadata", "Invalid metadata: keys are at most 64 characters, values at most 512.")
			return
		}
	}
	f, ok := s.file(w, req.InputFileID)
	if !ok {
		return
	}
	if f.purpose != "batch" {
		bad("input_file_id", fmt.Sprintf("File %s has purpose '%s'; a batch's input file must have purpose 'batch'.", f.id, f.purpose))
		return
	}
	b, onCreate, err := s.addBatch(req, f)
	if err != nil {
		writeParamError(w, http.StatusTooManyRequests, Fault{RetryAfter: time.Second}, err.Error(), "invalid_request_error", "batch_limit_exceeded", "")
		return
	}
	if onCreate != nil {
		onCreate(b.ID, b.Metadata)
	}
	writeJSON(w, b)
}

// addBatch stores a new batch, validating, making room under MaxBatches;
// it returns the OnCreate hook to call.
func (s *Server) addBatch(req batchRequest, f *file) (batchObject, func(string, map[string]string), error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if len(s.p.batches) >= s.p.cfg.MaxBatches && !s.p.dropOldestFinished() {
		return batchObject{}, nil, fmt.Errorf("fakelm keeps at most %d unfinished batches (BatchConfig.MaxBatches)", s.p.cfg.MaxBatches)
	}
	now := s.now()
	b := &batch{
		id: newID("batch_"), inputFileID: f.id, endpoint: req.Endpoint, window: req.CompletionWindow,
		metadata: req.Metadata, status: statusValidating, createdAt: now, phaseAt: now,
		expiresAt: now.Add(s.p.cfg.Window), at: map[string]time.Time{}, input: f.data,
	}
	s.p.batches[b.id] = b
	s.p.batchOrder = append(s.p.batchOrder, b.id)
	s.p.created++
	return b.object(), s.p.cfg.OnCreate, nil
}

// dropOldestFinished forgets the oldest finished batch and its output
// files; false when every batch is unfinished. p.mu is held.
func (p *provider) dropOldestFinished() bool {
	for _, id := range p.batchOrder {
		b := p.batches[id]
		if !b.terminal() {
			continue
		}
		for _, fid := range []string{b.outputFileID, b.errorFileID} {
			if _, ok := p.files[fid]; ok {
				delete(p.files, fid)
				p.fileOrder = without(p.fileOrder, fid)
			}
		}
		delete(p.batches, id)
		p.batchOrder = without(p.batchOrder, id)
		return true
	}
	return false
}

// batch looks a batch up under p.mu, answering 404 when it is unknown.
func (s *Server) batch(w http.ResponseWriter, id string) *batch {
	b := s.p.batches[id]
	if b == nil {
		writeParamError(w, http.StatusNotFound, Fault{}, "No such Batch object: "+id, "invalid_request_error", "", "id")
	}
	return b
}

// getBatch answers GET /v1/batches/{id}, moving the batch on a phase.
func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if b := s.batch(w, r.PathValue("id")); b != nil {
		s.advance(b, true)
		writeJSON(w, b.object())
	}
}

// cancelBatch answers POST /v1/batches/{id}/cancel: an unfinished batch is
// cancelling until its next retrieve, then cancelled with what it answered.
func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	b := s.batch(w, r.PathValue("id"))
	if b == nil {
		return
	}
	s.advance(b, false)
	switch b.status {
	case statusValidating, statusInProgress, statusFinalizing:
		b.enter(statusCancelling, s.now())
	case statusCancelling, statusCancelled:
	default:
		writeParamError(w, http.StatusConflict, Fault{}, fmt.Sprintf("Cannot cancel a batch with status '%s'.", b.status), "invalid_request_error", "", "")
		return
	}
	writeJSON(w, b.object())
}

// listBatches answers GET /v1/batches, newest first, limit 1-100 (default 20).
func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := listLimit(w, q.Get("limit"), 20, 100)
	if !ok {
		return
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	ids := append([]string(nil), s.p.batchOrder...)
	reverse(ids)
	page, more := pageAfter(ids, q.Get("after"), limit)
	data := make([]batchObject, len(page))
	for i, id := range page {
		b := s.p.batches[id]
		s.advance(b, false)
		data[i] = b.object()
	}
	writeJSON(w, listObject(data, page, more))
}

// enter moves the batch to status at now.
func (b *batch) enter(status string, now time.Time) {
	b.status = status
	b.phaseAt = now
	b.at[status] = now
}

// advance brings b up to the fake's clock: lines due are answered, an
// overdue batch expires, and a retrieve (poll) moves it at most one phase
// once that phase's time is up. p.mu is held.
func (s *Server) advance(b *batch, poll bool) {
	now := s.now()
	cfg := s.p.cfg
	if b.status == statusValidating || b.status == statusInProgress {
		if !now.Before(b.expiresAt) {
			if b.status == statusInProgress {
				s.answerLines(b, b.expiresAt)
			}
			s.finish(b, statusExpired, now)
			return
		}
	}
	if b.status == statusInProgress {
		s.answerLines(b, now)
	}
	if !poll {
		return
	}
	elapsed := now.Sub(b.phaseAt)
	switch b.status {
	case statusValidating:
		if elapsed >= cfg.Validating {
			s.validate(b, now)
		}
	case statusInProgress:
		if elapsed >= cfg.InProgress && b.done == b.total && len(b.stalled) == 0 {
			b.enter(statusFinalizing, now)
		}
	case statusFinalizing:
		if elapsed >= cfg.Finalizing {
			s.finish(b, statusCompleted, now)
		}
	case statusCancelling:
		s.finish(b, statusCancelled, now)
	}
}

// requestLine is one line of a batch's input file.
type requestLine struct {
	CustomID *string         `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// maxBatchErrors bounds the errors a failed validation reports.
const maxBatchErrors = 100

// validate reads the input file through: each line a POST to the batch's
// endpoint with a body, its own custom_id and the first line's model, at
// most MaxRequests of them, within the enqueued-token limit. The batch
// moves to in_progress, or failed with the errors.
func (s *Server) validate(b *batch, now time.Time) {
	cfg := s.p.cfg
	seen := map[string]struct{}{}
	lines := newLineReader(b.input)
	fail := func(code, msg, param string, line int) {
		if len(b.errors) >= maxBatchErrors {
			return
		}
		e := batchError{Code: code, Message: msg}
		if param != "" {
			e.Param = &param
		}
		if line > 0 {
			e.Line = &line
		}
		b.errors = append(b.errors, e)
	}
	var tokens int64
	n := 0
	for {
		raw, err := lines.next()
		if err != nil {
			break
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		if n++; n > cfg.MaxRequests {
			fail("too_many_tasks", fmt.Sprintf("The batch input file has more than the %d requests a batch may have.", cfg.MaxRequests), "", 0)
			break
		}
		var l requestLine
		if err := json.Unmarshal(raw, &l); err != nil {
			fail("invalid_json_line", "This line is not parseable as valid JSON.", "", lines.n)
			continue
		}
		var model struct {
			Model string `json:"model"`
		}
		switch {
		case l.CustomID == nil || *l.CustomID == "":
			fail("missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id", lines.n)
		case l.Method != http.MethodPost:
			fail("invalid_request", "The method must be 'POST'.", "method", lines.n)
		case l.URL != b.endpoint:
			fail("invalid_url", fmt.Sprintf("The URL '%s' does not match the batch's endpoint '%s'.", l.URL, b.endpoint), "url", lines.n)
		case len(l.Body) == 0 || l.Body[0] != '{' || json.Unmarshal(l.Body, &model) != nil || model.Model == "":
			fail("missing_required_parameter", "Missing required parameter: 'body' with a 'model'.", "body", lines.n)
		case b.model != "" && model.Model != b.model:
			fail("mismatched_model", fmt.Sprintf("The model '%s' does not match the model '%s' of the batch's other requests.", model.Model, b.model), "body.model", lines.n)
		default:
			if _, dup := seen[*l.CustomID]; dup {
				fail("duplicate_custom_id", fmt.Sprintf("The custom_id '%s' is used by an earlier line.", *l.CustomID), "custom_id", lines.n)
				continue
			}
			seen[*l.CustomID] = struct{}{}
			b.model = model.Model
			if pr, err := parseRequest(l.Body); err == nil {
				tokens += approxTokens(pr.promptLen)
			}
		}
	}
	if n == 0 {
		fail("empty_file", "The batch input file is empty.", "", 0)
	}
	if len(b.errors) == 0 && cfg.TokenLimit > 0 {
		if queued := s.p.enqueuedTokens(b.model); queued+tokens > cfg.TokenLimit {
			fail("token_limit_exceeded", fmt.Sprintf("Enqueued token limit reached for %s in organization org-fakelm. Limit: %d enqueued tokens. Please try again once some in_progress batches have been completed.", b.model, cfg.TokenLimit), "", 0)
		}
	}
	if len(b.errors) > 0 {
		b.enter(statusFailed, now)
		b.input = nil
		return
	}
	b.total, b.tokens = n, tokens
	b.lines = newLineReader(b.input)
	b.out, b.errs = &blob{}, &blob{}
	b.enter(statusInProgress, now)
}

// enqueuedTokens is the prompt tokens of model's batches in progress.
func (p *provider) enqueuedTokens(model string) int64 {
	var n int64
	for _, b := range p.batches {
		if b.enqueued() && b.model == model {
			n += b.tokens
		}
	}
	return n
}

// answerLines answers the lines due by t: all of them once InProgress has
// passed, a share of them before, at most StallAfter.
func (s *Server) answerLines(b *batch, t time.Time) {
	cfg := s.p.cfg
	due := b.total
	if elapsed := t.Sub(b.phaseAt); cfg.InProgress > 0 && elapsed < cfg.InProgress {
		due = int(int64(b.total) * int64(elapsed) / int64(cfg.InProgress))
	}
	if cfg.StallAfter > 0 {
		due = min(due, cfg.StallAfter)
	}
	for b.done < due {
		raw, err := b.lines.next()
		if err != nil {
			break
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		b.done++
		s.answerLine(b, raw)
	}
}

// answerLine answers one request line as a live call to the fake would be
// answered, into the batch's output or error file.
func (s *Server) answerLine(b *batch, raw []byte) {
	var l requestLine
	_ = json.Unmarshal(raw, &l) // validated
	cfg := s.p.cfg
	id, reqID := lineIDs(b.id, b.done)
	if cfg.FailEvery > 0 && b.done%cfg.FailEvery == 0 {
		msg, typ, code := errorText(cfg.FailStatus)
		b.failed++
		writeLine(b.errs, id, *l.CustomID, reqID, cfg.FailStatus, errorJSON(msg, typ, code, ""), false)
		return
	}
	o := s.decide(l.Body, false)
	switch {
	case o.status != 0:
		b.failed++
		writeLine(b.errs, id, *l.CustomID, reqID, o.status, errorJSON(o.msg, o.typ, o.code, ""), false)
	case o.fault.Kind == FaultStall:
		b.stalled = append(b.stalled, *l.CustomID)
	default:
		b.completed++
		u := o.ans.usage()
		b.usage.PromptTokens += u.PromptTokens
		b.usage.CompletionTokens += u.CompletionTokens
		b.usage.TotalTokens += u.TotalTokens
		malformed := o.fault.Kind == FaultTruncate || (cfg.MalformedEvery > 0 && b.done%cfg.MalformedEvery == 0)
		writeLine(b.out, id, *l.CustomID, reqID, http.StatusOK, completionJSON(o.ans), malformed)
	}
}

// lineIDs are a line's batch request id and request id, derived from its
// batch and position so a line's ids are stable.
func lineIDs(batchID string, n int) (id, requestID string) {
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%s/%d", batchID, n)
	sum := h.Sum64()
	return fmt.Sprintf("batch_req_%016x", sum), fmt.Sprintf("req_%016x", sum^0x9e3779b97f4a7c15)
}

// outputLine is one line of an output or error file.
type outputLine struct {
	ID       string        `json:"id"`
	CustomID string        `json:"custom_id"`
	Response *lineResponse `json:"response"`
	Error    *lineError    `json:"error"`
}

type lineResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

type lineError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeLine appends a response line to f; a malformed one is cut short.
func writeLine(f *blob, id, customID, requestID string, status int, body []byte, malformed bool) {
	line, _ := json.Marshal(outputLine{ID: id, CustomID: customID,
		Response: &lineResponse{StatusCode: status, RequestID: requestID, Body: body}})
	if malformed {
		line = line[:len(line)/2]
	}
	_, _ = f.Write(append(line, '\n'))
}

// finish ends b with status at now: the lines left unanswered (cancelled
// or expired) go to the error file, and the output and error files are
// stored when they have lines.
func (s *Server) finish(b *batch, status string, now time.Time) {
	if b.lines != nil && status != statusCompleted {
		code, msg := "batch_expired", "This request could not be executed before the completion window expired."
		if status == statusCancelled {
			code, msg = "batch_cancelled", "This request was cancelled before it could be executed."
		}
		unanswered := b.stalled
		for {
			raw, err := b.lines.next()
			if err != nil {
				break
			}
			var l requestLine
			if len(bytes.TrimSpace(raw)) > 0 && json.Unmarshal(raw, &l) == nil {
				unanswered = append(unanswered, *l.CustomID)
			}
		}
		for i, cid := range unanswered {
			id, _ := lineIDs(b.id, b.total+1+i)
			line, _ := json.Marshal(outputLine{ID: id, CustomID: cid, Error: &lineError{Code: code, Message: msg}})
			_, _ = b.errs.Write(append(line, '\n'))
		}
	}
	if b.out != nil && b.out.size > 0 {
		b.outputFileID = s.p.addOutput(fmt.Sprintf("%s_output.jsonl", b.id), b.out, now)
	}
	if b.errs != nil && b.errs.size > 0 {
		b.errorFileID = s.p.addOutput(fmt.Sprintf("%s_error.jsonl", b.id), b.errs, now)
	}
	b.input, b.lines, b.out, b.errs, b.stalled = nil, nil, nil, nil, nil
	b.enter(status, now)
}

// addOutput stores a batch's output file. p.mu is held.
func (p *provider) addOutput(name string, data *blob, now time.Time) string {
	f := &file{id: newID("file-"), filename: name, purpose: "batch_output", createdAt: now, data: data}
	p.files[f.id] = f
	p.fileOrder = append(p.fileOrder, f.id)
	return f.id
}

// withOutage serves mux, the Files and Batches endpoints, after any
// queued outage fault.
func (s *Server) withOutage(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.p.mu.Lock()
		var f *Fault
		if len(s.p.outage) > 0 {
			f = &s.p.outage[0]
			s.p.outage = s.p.outage[1:]
		}
		s.p.mu.Unlock()
		if f != nil {
			status := f.Status
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
			msg, typ, code := errorText(status)
			writeError(w, status, *f, msg, typ, code)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) batchMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/files", s.createFile)
	mux.HandleFunc("GET /v1/files", s.listFiles)
	mux.HandleFunc("GET /v1/files/{id}", s.getFile)
	mux.HandleFunc("DELETE /v1/files/{id}", s.deleteFile)
	mux.HandleFunc("GET /v1/files/{id}/content", s.fileContent)
	mux.HandleFunc("POST /v1/batches", s.createBatch)
	mux.HandleFunc("GET /v1/batches", s.listBatches)
	mux.HandleFunc("GET /v1/batches/{id}", s.getBatch)
	mux.HandleFunc("POST /v1/batches/{id}/cancel", s.cancelBatch)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, Fault{}, "Unknown path "+r.Method+" "+r.URL.Path, "invalid_request_error", "unknown_url")
	})
	return s.withOutage(mux)
}

// isBatchPath is whether path is one of the Files or Batches endpoints.
func isBatchPath(path string) bool {
	return path == "/v1/files" || path == "/v1/batches" ||
		strings.HasPrefix(path, "/v1/files/") || strings.HasPrefix(path, "/v1/batches/")
}

// countedPath is the path a request is counted under: the Files and
// Batches endpoints by route ("/v1/batches/{id}"), so the counts stay
// bounded however many ids there are.
func countedPath(path string) string {
	for _, root := range []string{"/v1/files/", "/v1/batches/"} {
		if rest, ok := strings.CutPrefix(path, root); ok && rest != "" {
			if _, sub, ok := strings.Cut(rest, "/"); ok {
				return root + "{id}/" + sub
			}
			return root + "{id}"
		}
	}
	return path
}
