package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/telemetry"
	"github.com/rs/zerolog"
)

// /v1/batches: bulk uploads modelled on the provider batch APIs. The batch
// record, items and results live in Redis (package batches); these handlers
// validate uploads, read records and relay events.

// batchCreateTimeout bounds committing an upload once its body is read: the
// last chunk of items, the accept and the enqueues.
const batchCreateTimeout = 2 * time.Minute

// batchHandlers serve /v1/batches.
type batchHandlers struct {
	s *Server
	b *batches.Store
	// uploads holds a token per upload this process is reading
	// (BATCH_UPLOADS_PER_PROCESS; admitUpload).
	uploads chan struct{}
}

// batchRoutes registers /v1/batches on g.
func (s *Server) batchRoutes(g *gin.RouterGroup) {
	h := &batchHandlers{s: s, b: s.deps.Batches, uploads: make(chan struct{}, s.cfg.BatchUploadsPerProcess)}
	g.POST("/batches", s.checkQuery(batchUploadQuery...), s.checkBudget, h.create)
	getRoute(g, "/batches", h.list)
	getRoute(g, "/batches/:id", h.get)
	g.DELETE("/batches/:id", h.remove)
	g.POST("/batches/:id/cancel", s.checkQuery(), h.cancel)
	g.POST("/batches/:id/retry", s.checkQuery(), s.checkBudget, h.retry)
	getRoute(g, "/batches/:id/results", h.results)
	getRoute(g, "/batches/:id/events", s.limitStreams, h.events)
}

// batchUploadQuery is what POST /v1/batches takes in its query: how its
// items reach the LM (mode), whether they bypass the LM cache (no_cache),
// and their program (program, checked when it is resolved).
var batchUploadQuery = []queryParam{
	{name: "mode", values: []string{string(jobs.BatchModeLive), string(jobs.BatchModeProvider)}},
	{name: "no_cache", values: []string{"true", "false"}},
	{name: "program"},
}

// batchMode is an upload's ?mode= (checkQuery has checked it), live when
// it is not given.
func batchMode(c *gin.Context) jobs.BatchMode {
	return jobs.BatchMode(c.DefaultQuery("mode", string(jobs.BatchModeLive)))
}

// batchView is a batch as the API shows it (times in Unix seconds, as the
// provider batch APIs).
type batchView struct {
	ID            string           `json:"id"`
	Object        string           `json:"object"`
	Endpoint      string           `json:"endpoint"`
	Status        jobs.BatchStatus `json:"status"`
	RequestCounts jobs.BatchCounts `json:"request_counts"`
	CreatedAt     int64            `json:"created_at"`
	InProgressAt  *int64           `json:"in_progress_at"`
	ExpiresAt     int64            `json:"expires_at"`
	CancellingAt  *int64           `json:"cancelling_at"`
	CompletedAt   *int64           `json:"completed_at"`
	FailedAt      *int64           `json:"failed_at"`
	CancelledAt   *int64           `json:"cancelled_at"`
	ExpiredAt     *int64           `json:"expired_at"`
	Links         batchLinks       `json:"links"`
	// Mode is live or provider; a provider batch shows its provider object
	// and its cost once its offload runner has written them.
	Mode     jobs.BatchMode         `json:"mode"`
	Provider *jobs.ProviderProgress `json:"provider,omitempty"`
	Cost     *jobs.BatchCost        `json:"cost,omitempty"`
}

type batchLinks struct {
	Self    string `json:"self"`
	Results string `json:"results"`
	Events  string `json:"events"`
	Cancel  string `json:"cancel"`
}

func unix(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	v := t.Unix()
	return &v
}

func batchViewOf(b *jobs.Batch) batchView {
	self := "/v1/batches/" + b.ID
	return batchView{
		ID: b.ID, Object: "batch", Endpoint: "/v1/jobs", Status: b.Status, RequestCounts: b.Counts,
		CreatedAt: b.CreatedAt.Unix(), InProgressAt: unix(b.InProgressAt), ExpiresAt: b.ExpiresAt.Unix(),
		CancellingAt: unix(b.CancellingAt), CompletedAt: unix(b.CompletedAt), FailedAt: unix(b.FailedAt),
		CancelledAt: unix(b.CancelledAt), ExpiredAt: unix(b.ExpiredAt),
		Links: batchLinks{Self: self, Results: self + "/results", Events: self + "/events", Cancel: self + "/cancel"},
		Mode:  b.Mode, Provider: b.Provider, Cost: b.Cost,
	}
}

// fail answers err, naming batches rather than jobs.
func (h *batchHandlers) fail(c *gin.Context, err error) {
	var problems batchProblems
	if errors.As(err, &problems) {
		_ = c.Error(err)
		writeJSON(c, http.StatusUnprocessableEntity, map[string]any{"error": map[string]any{
			"code": "validation_error", "message": fmt.Sprintf("the upload has problems (first on line %d: %s)", problems[0].Line, problems[0].Reason),
			"problems": problems,
		}})
		return
	}
	h.s.respond(c, h.answerOf(err))
}

// answerOf is the answer to err, naming batches rather than jobs: an
// *apiError, or err itself when the jobs' answer fits (Server.classify).
func (h *batchHandlers) answerOf(err error) error {
	var (
		quota    *batches.QuotaError
		problems batchProblems
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &problems):
		// fail answers these itself, listing them; one code classifies them.
		err = &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", cause: err, message: problems.Error()}
	case errors.Is(err, batches.ErrNotFound):
		err = errNotFound("batch")
	case errors.Is(err, batches.ErrEnded):
		err = &apiError{status: http.StatusConflict, code: "batch_ended", message: "batch has already ended"}
	case errors.Is(err, batches.ErrActive):
		err = &apiError{status: http.StatusConflict, code: "batch_active", message: "batch has not ended yet"}
	case errors.Is(err, batches.ErrNothingToRetry):
		err = &apiError{status: http.StatusConflict, code: "nothing_to_retry", message: "batch has no failed items"}
	case errors.As(err, &quota):
		name := map[string]string{"items": "BATCH_QUOTA_ITEMS_PER_KEY", "bytes": "BATCH_QUOTA_BYTES_PER_KEY"}[quota.Resource]
		err = &apiError{status: http.StatusTooManyRequests, code: "batch_quota_exceeded", cause: err,
			message: fmt.Sprintf("this upload would take this key's batches over %s: they hold %d of its %d %s; "+
				"delete ended batches (DELETE /v1/batches/{id}) or wait for them to expire", name, quota.Used, quota.Limit, quota.Resource)}
	}
	return err
}

// parseBatchID validates a batch id: "batch_" and 32 lowercase hex digits.
func parseBatchID(id string) (string, error) {
	const prefix = "batch_"
	if len(id) != len(prefix)+32 || id[:len(prefix)] != prefix {
		return "", errNotFound("batch")
	}
	if _, err := parseJobID(id[len(prefix):]); err != nil {
		return "", errNotFound("batch")
	}
	return id, nil
}

// load reads the batch named in the path, as its owner may see it.
func (h *batchHandlers) load(ctx context.Context, c *gin.Context) (*jobs.Batch, error) {
	id, err := parseBatchID(c.Param("id"))
	if err != nil {
		return nil, err
	}
	b, err := h.b.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if b.Owner != owner(c) {
		return nil, batches.ErrNotFound
	}
	return b, nil
}

// create is POST /v1/batches: the upload is read as a stream, validated
// whole while its items are stored (as an invisible batch, removed if the
// upload is refused), and answered 202 with the batch and its Location.
func (h *batchHandlers) create(c *gin.Context) {
	s := h.s
	idem, err := parseIdempotencyKey(c.GetHeader("Idempotency-Key"))
	if err != nil {
		h.fail(c, err)
		return
	}
	mode := batchMode(c)
	if mode == jobs.BatchModeProvider && s.cfg.NoProviderBatches {
		h.fail(c, &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: "mode",
			message: "mode=provider needs the LM provider's batch API, which this server is not configured for: use mode=live (the default)"})
		return
	}
	if strings.HasPrefix(c.ContentType(), "multipart/") {
		h.fail(c, &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", field: "body",
			message: formUploadHint})
		return
	}
	if c.Request.ContentLength > s.cfg.BatchMaxBytes {
		h.fail(c, h.tooBig())
		return
	}
	release, err := h.admitUpload(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	defer release()
	rctx, rcancel := s.redisCtx(c)
	replay, err := h.b.Replay(rctx, owner(c), idem)
	rcancel()
	if err != nil {
		h.fail(c, err)
		return
	}
	if replay != nil {
		h.replay(c, replay)
		return
	}
	// The items' program, resolved once for all of them (?program=,
	// default qa), and their spec but for their inputs: the server part is
	// set here.
	prog, err := h.program(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	spec := jobs.Spec{ClientSpec: jobs.ClientSpec{Program: prog.ref, Options: jobs.Options{NoCache: c.Query("no_cache") == "true"}},
		ServerSpec: jobs.ServerSpec{Owner: owner(c), Queue: jobs.QueueBatch, ProgramVersion: prog.version}}
	// The enqueue span ("send batch") covers storing the upload as it is
	// read, and its commit: the batch record's spec, written first, holds
	// its context, which the items' spans link to.
	ctx, send := s.startSend(c.Request.Context(), &spec)
	created, err := h.store(ctx, c, spec, mode, idem, &prog)
	id := ""
	if created != nil {
		id = created.Batch.ID
	}
	s.endSend(ctx, send, telemetry.BatchID, id, h.answerOf(err))
	if err != nil {
		h.fail(c, err)
		return
	}
	h.accepted(c, created)
}

// store stores the upload as a batch of spec's items, reading it as it
// comes (up to its end) and committing it under idem.
func (h *batchHandlers) store(ctx context.Context, c *gin.Context, spec jobs.Spec, mode jobs.BatchMode, idem string, prog *resolvedProgram) (*batches.Created, error) {
	s := h.s
	rctx, rcancel := context.WithTimeout(ctx, s.cfg.RedisTimeout)
	up, err := h.b.BeginUpload(rctx, batches.UploadRequest{Spec: spec, Mode: mode, TTL: s.uploadTTL()})
	rcancel()
	if err != nil {
		return nil, err
	}
	bodyHash, err := h.read(c, up.Add, prog)
	// The body took as long as it took; the answer gets its own time.
	s.writeDeadline(c, batchCreateTimeout)
	if err != nil {
		up.Abort(ctx)
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, batchCreateTimeout)
	defer cancel()
	return up.Commit(cctx, idem, bodyHash)
}

// program resolves the upload's ?program= (default qa). An unknown one is
// a 422 naming the program parameter and the known ones.
func (h *batchHandlers) program(c *gin.Context) (resolvedProgram, error) {
	ref := c.DefaultQuery("program", jobs.ProgramQA)
	ctx, cancel := h.s.redisCtx(c)
	defer cancel()
	p, err := h.s.resolveProgram(ctx, ref)
	var se *jobs.SpecError
	if errors.As(err, &se) {
		return p, &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: "program",
			message: "program: " + strings.TrimPrefix(se.Error(), "program: "), cause: err}
	}
	return p, err
}

// replay answers a repeated upload with the batch its Idempotency-Key names,
// once its body is read (and validated: an upload that would be refused is
// refused) and found the same; nothing is stored.
func (h *batchHandlers) replay(c *gin.Context, r *batches.Replayed) {
	prog, err := h.program(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	bodyHash, err := h.read(c, nil, &prog)
	h.s.writeDeadline(c, batchCreateTimeout)
	if err == nil && bodyHash != r.BodyHash {
		err = store.ErrIdempotencyMismatch
	}
	if err != nil {
		h.fail(c, err)
		return
	}
	ctx, cancel := h.s.redisCtx(c)
	defer cancel()
	bt, err := h.b.Get(ctx, r.BatchID)
	if err != nil {
		h.fail(c, err)
		return
	}
	h.accepted(c, &batches.Created{Batch: bt, Replayed: true})
}

// accepted answers 202 with the batch.
func (h *batchHandlers) accepted(c *gin.Context, created *batches.Created) {
	s := h.s
	v := batchViewOf(created.Batch)
	c.Header("Location", v.Links.Self)
	c.Header("Retry-After", retryAfter(s.cfg.PollAfter))
	if created.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	writeJSON(c, http.StatusAccepted, v)
}

func (h *batchHandlers) tooBig() *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, code: "batch_too_large", field: "body",
		message: fmt.Sprintf("upload exceeds BATCH_MAX_BYTES (%d bytes)", h.s.cfg.BatchMaxBytes)}
}

// read reads and validates the upload, passing its valid items to add (nil:
// validate only; each call has RedisTimeout, as it may store a chunk), and
// returns the hash that identifies the upload for an Idempotency-Key: its
// body's, ?no_cache and ?mode. Every way it can fail is an error to answer.
func (h *batchHandlers) read(c *gin.Context, add func(context.Context, jobs.BatchItem) error, prog *resolvedProgram) (string, error) {
	s := h.s
	sum := sha256.New()
	body := http.MaxBytesReader(c.Writer, newUploadBody(c, s.cfg.BatchUploadGrace, s.cfg.BatchUploadMinRate), s.cfg.BatchMaxBytes)
	lim := batchLimits{MaxItems: s.cfg.BatchMaxItems, MaxQuestionChars: s.cfg.MaxQuestionChars, MaxInputBytes: int(s.cfg.MaxInputBytes), Program: prog}
	var store func(jobs.BatchItem) error
	if add != nil {
		store = func(it jobs.BatchItem) error {
			ctx, cancel := s.redisCtx(c)
			defer cancel()
			if err := add(ctx, it); err != nil {
				return storeError{err}
			}
			return nil
		}
	}
	problems, err := decodeBatchUpload(io.TeeReader(body, sum), lim, store)
	var (
		mbe    *http.MaxBytesError
		tmi    errTooManyItems
		empty  errEmptyUpload
		stored storeError
	)
	switch {
	case errors.As(err, &mbe):
		return "", h.tooBig()
	case errors.Is(err, errUploadTooSlow):
		c.Header("Connection", "close")
		return "", &apiError{status: http.StatusRequestTimeout, code: "upload_too_slow", field: "body", cause: err,
			message: fmt.Sprintf("the upload arrived slower than BATCH_UPLOAD_MIN_RATE (%d bytes/s, after BATCH_UPLOAD_GRACE of %s)",
				s.cfg.BatchUploadMinRate, s.cfg.BatchUploadGrace)}
	case errors.As(err, &tmi):
		return "", &apiError{status: http.StatusRequestEntityTooLarge, code: "batch_too_many_items", field: "body", message: tmi.Error()}
	case errors.As(err, &empty):
		return "", &apiError{status: http.StatusUnprocessableEntity, code: "empty_upload", field: "body", message: empty.Error()}
	case errors.As(err, &stored):
		return "", stored.err // a quota, or Redis
	case err != nil:
		return "", &apiError{status: http.StatusBadRequest, code: "bad_body", message: "could not read the request body", cause: err}
	case len(problems) > 0:
		return "", batchProblems(problems)
	}
	if c.Query("no_cache") == "true" {
		sum.Write([]byte("\x00no_cache"))
	}
	// A live upload hashes as before modes, so its key's replay holds
	// across the upgrade.
	if mode := batchMode(c); mode != jobs.BatchModeLive {
		sum.Write([]byte("\x00mode=" + string(mode)))
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}

// storeError is why an upload's items could not be stored, as opposed to
// why its body could not be read.
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// batchProblems is a refused upload: 422 with every problem found.
type batchProblems []batchProblem

func (p batchProblems) Error() string {
	return fmt.Sprintf("batch upload refused: %d problems", len(p))
}

// get is GET /v1/batches/{id}.
func (h *batchHandlers) get(c *gin.Context) {
	ctx, cancel := h.s.redisCtx(c)
	defer cancel()
	b, err := h.load(ctx, c)
	if err != nil {
		h.fail(c, err)
		return
	}
	writeJSON(c, http.StatusOK, batchViewOf(b))
}

// list is GET /v1/batches?limit=&after=: the caller's batches, newest first.
func (h *batchHandlers) list(c *gin.Context) {
	limit := 20
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			h.fail(c, &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: "limit", message: "limit must be 1 to 100"})
			return
		}
		limit = n
	}
	after := c.Query("after")
	if after != "" {
		if _, err := parseBatchID(after); err != nil {
			h.fail(c, &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: "after", message: "after must be a batch id"})
			return
		}
	}
	ctx, cancel := h.s.redisCtx(c)
	defer cancel()
	bs, more, err := h.b.List(ctx, owner(c), after, limit)
	if err != nil {
		h.fail(c, err)
		return
	}
	data := make([]batchView, len(bs))
	for i, b := range bs {
		data[i] = batchViewOf(b)
	}
	out := map[string]any{"object": "list", "data": data, "has_more": more}
	if len(bs) > 0 {
		out["first_id"], out["last_id"] = bs[0].ID, bs[len(bs)-1].ID
	}
	writeJSON(c, http.StatusOK, out)
}

// cancel is POST /v1/batches/{id}/cancel: 200 with the batch, cancelling
// (or already cancelled); 409 when it had ended otherwise.
func (h *batchHandlers) cancel(c *gin.Context) {
	ctx, cancel := h.s.redisCtx(c)
	defer cancel()
	b, err := h.load(ctx, c)
	if err != nil {
		h.fail(c, err)
		return
	}
	if b.Status != jobs.BatchCancelled {
		if b, err = h.b.Cancel(ctx, b.ID); err != nil {
			h.fail(c, err)
			return
		}
		h.freeInputs(c, b)
	}
	writeJSON(c, http.StatusOK, batchViewOf(b))
}

// freeInputs frees at once the inputs of a cancelled batch's queued items,
// for its owner's quota. The cancel has happened whatever this does: it gets
// its own time, and a failure is logged, not answered (the items' tasks
// free them as they drain; batches.Store.FreeInputs).
func (h *batchHandlers) freeInputs(c *gin.Context, b *jobs.Batch) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), h.s.cfg.RedisTimeout)
	defer cancel()
	if err := h.b.FreeInputs(ctx, b); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("batch_id", b.ID).
			Msg("free the inputs of a cancelled batch now: its queued items free them as they drain")
	}
}

// remove is DELETE /v1/batches/{id}: an ended batch and its results go; 409
// while it runs. 204.
func (h *batchHandlers) remove(c *gin.Context) {
	ctx, cancel := h.s.redisCtx(c)
	defer cancel()
	b, err := h.load(ctx, c)
	if err != nil {
		h.fail(c, err)
		return
	}
	if err := h.b.Delete(ctx, b.ID); err != nil {
		h.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
}

// retry is POST /v1/batches/{id}/retry: the failed items of an ended batch
// run again. 202 with the batch.
func (h *batchHandlers) retry(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), batchCreateTimeout)
	defer cancel()
	b, err := h.load(ctx, c)
	if err != nil {
		h.fail(c, err)
		return
	}
	if _, err := h.b.Retry(ctx, b.ID); err != nil {
		h.fail(c, err)
		return
	}
	if b, err = h.b.Get(ctx, b.ID); err != nil {
		h.fail(c, err)
		return
	}
	writeJSON(c, http.StatusAccepted, batchViewOf(b))
}
