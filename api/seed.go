package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/telemetry"
	"github.com/rs/zerolog"
)

// The Python deployment's endpoints, with its shapes, so its clients work
// unchanged. Each question is a job on the interactive queue; the handler
// waits for it through the hub.

// cancelTimeout bounds cancelling the job of a client that went away.
const cancelTimeout = 2 * time.Second

// predictResponse is the seed's PredictResponse.
type predictResponse struct {
	Answer         string          `json:"answer"`
	KeyConcepts    *string         `json:"key_concepts"`
	QuestionType   *string         `json:"question_type"`
	Usage          json.RawMessage `json:"usage"`
	LatencySeconds *float64        `json:"latency_seconds"`
}

func optString(r *jobs.Result, name string) *string {
	if r == nil {
		return nil
	}
	v, _ := r.Outputs.Get(name)
	s, ok := v.(string)
	if !ok {
		return nil
	}
	return &s
}

func usageOf(r *jobs.Result) json.RawMessage {
	if r == nil || len(r.Usage) == 0 {
		return json.RawMessage("null")
	}
	return r.Usage
}

func predictResponseOf(j *jobs.Job, elapsed time.Duration) predictResponse {
	lat := j.Result.LatencySeconds
	if lat <= 0 {
		lat = elapsed.Seconds()
	}
	return predictResponse{
		Answer:         j.Result.Answer("answer"),
		KeyConcepts:    optString(j.Result, "key_concepts"),
		QuestionType:   optString(j.Result, "question_type"),
		Usage:          usageOf(j.Result),
		LatencySeconds: &lat,
	}
}

// overBudget reports whether a job failed because its owner's daily token
// budget was spent when it started (after its submit passed checkBudget).
func overBudget(e *jobs.Error) bool { return e != nil && e.Code == jobs.ErrCodeBudget }

// budgetDetail words a start's budget refusal as checkBudget's at submit
// begins, so clients see one refusal whenever the budget ran out.
func budgetDetail(e *jobs.Error) string { return "daily token budget exceeded: " + e.Message }

// outcomeError is the seed-style error for a job that did not complete (nil
// for a completed one).
func (s *Server) outcomeError(j *jobs.Job, waited time.Duration) *apiError {
	poll := " (job " + j.ID + ": GET /v1/jobs/" + j.ID + ")"
	switch j.Status {
	case jobs.StatusCompleted:
		return nil
	case jobs.StatusFailed:
		if overBudget(j.Error) {
			// Answered as checkBudget answers at submit: the client's limit,
			// not a failure of the service.
			now := time.Now()
			return &apiError{status: http.StatusTooManyRequests, code: jobs.ErrCodeBudget,
				message: budgetDetail(j.Error) + poll, retryAfter: jobs.BudgetResetAt(now).Sub(now)}
		}
		msg, logText := "prediction failed", ""
		if j.Error != nil {
			msg = "Prediction failed: " + j.Error.Message
			if !s.cfg.LogQuestions {
				logText = "Prediction failed: " + j.Error.Code + poll // the record has the reason
			}
		}
		return &apiError{status: http.StatusInternalServerError, code: "job_failed", message: msg + poll, logText: logText}
	case jobs.StatusExpired:
		return &apiError{status: http.StatusServiceUnavailable, code: "job_expired", retryAfter: s.cfg.BusyRetryAfter,
			message: "The service is overloaded: the question was not started in time; retry later" + poll}
	case jobs.StatusCancelled:
		return &apiError{status: http.StatusConflict, code: "job_cancelled", message: "The job was cancelled" + poll}
	}
	return &apiError{status: http.StatusGatewayTimeout, code: "timeout",
		message: fmt.Sprintf("Prediction timed out after %s; job %s is still %s: poll GET /v1/jobs/%s for its answer", waited, j.ID, j.Status, j.ID)}
}

// cancelAbandoned cancels the job of a client that went away (not during
// shutdown: then the client was cut off, not gone by choice).
func (s *Server) cancelAbandoned(ctx context.Context, id string) {
	select {
	case <-s.draining:
		return
	default:
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer cancel()
	if _, err := s.deps.Client.Cancel(cctx, id); err != nil && !errors.Is(err, store.ErrTerminal) {
		zerolog.Ctx(ctx).Warn().Err(err).Str("job_id", id).Msg("cancel the job of a client that went away")
		return
	}
	zerolog.Ctx(ctx).Info().Str("job_id", id).Msg("client went away: job cancelled")
}

// openPredict reads and validates a seed predict body and registers the
// request with the shutdown drain (the caller ends it); it returns the spec
// and the version of qa it runs, and ok is false when it has already
// answered.
func (s *Server) openPredict(c *gin.Context) (spec jobs.ClientSpec, version string, ok bool) {
	body, err := readBody(c.Writer, c.Request, s.cfg.MaxBodyBytes)
	if err != nil {
		s.respond(c, err)
		return jobs.ClientSpec{}, "", false
	}
	spec, version, err = decodePredictRequest(body, s.rules(c))
	if err != nil {
		s.respond(c, err)
		return jobs.ClientSpec{}, "", false
	}
	if !s.streams.begin() {
		s.respond(c, store.ErrHubClosed)
		return jobs.ClientSpec{}, "", false
	}
	return spec, version, true
}

// predict is the seed's POST /predict: wait up to PredictTimeout for the
// answer, then 504 with the job id. A client that goes away cancels its job.
func (s *Server) predict(c *gin.Context) {
	start := time.Now()
	spec, version, ok := s.openPredict(c)
	if !ok {
		return
	}
	defer s.streams.end()
	j, err := s.answer(c, spec, version)
	if err != nil {
		s.countUnanswered(c.Request.Context(), err)
		s.respond(c, err)
		return
	}
	if ae := s.outcomeError(j, s.cfg.PredictTimeout); ae != nil {
		s.countUnanswered(c.Request.Context(), ae)
		s.respond(c, ae)
		return
	}
	resp := predictResponseOf(j, time.Since(start))
	s.summary.record(false, time.Since(start), j.Result.Usage)
	writeJSON(c, http.StatusOK, resp)
}

// countUnanswered counts a question that got no answer because of err: an
// error in the summary, unless its client hung up (499) or its key's budget
// was spent (429), which are no failures of the service's.
func (s *Server) countUnanswered(ctx context.Context, err error) {
	st := s.classify(ctx, err).status
	s.summary.record(st != statusClientClosed && st != http.StatusTooManyRequests, 0, nil)
}

// answer submits one job and waits for it up to PredictTimeout; a client
// that goes away meanwhile cancels the job. It submits and waits as POST
// /v1/jobs?wait= does (store.Client.SubmitWait): subscribed before the job
// exists, so a job that completes costs no read.
func (s *Server) answer(c *gin.Context, spec jobs.ClientSpec, version string) (*jobs.Job, error) {
	ctx := c.Request.Context()
	sctx, cancel := s.redisCtx(c)
	sub, f, err := s.submitAndFollow(sctx, submitRequest(c, spec, version, ""))
	cancel()
	if err != nil {
		return nil, err
	}
	s.countSubmitted(sub)
	if f == nil { // a replay of an ended job: none without an Idempotency-Key
		return sub.Job, nil
	}
	defer f.Close()
	s.writeDeadline(c, s.cfg.PredictTimeout)
	return s.awaitWith(ctx, sub.Job.ID, s.cfg.PredictTimeout, f.Wait)
}

// await waits for job id up to timeout; a ctx ended by the client cancels the
// job.
func (s *Server) await(ctx context.Context, id string, timeout time.Duration) (*jobs.Job, error) {
	return s.awaitWith(ctx, id, timeout, func(ctx context.Context, timeout time.Duration) (*jobs.Job, error) {
		return s.deps.Store.Wait(ctx, s.deps.Hub, id, timeout)
	})
}

// awaitWith is await through wait (a Follower's, or a wait that begins by
// subscribing).
func (s *Server) awaitWith(ctx context.Context, id string, timeout time.Duration, wait func(context.Context, time.Duration) (*jobs.Job, error)) (*jobs.Job, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout+s.cfg.RedisTimeout)
	defer cancel()
	j, err := wait(wctx, timeout)
	if ctx.Err() != nil {
		s.cancelAbandoned(ctx, id)
		return nil, errClientGone
	}
	if err != nil {
		return nil, err
	}
	return j, nil
}

// predictStream is the seed's POST /predict/stream: token frames of the
// answer field, then a complete frame (or an error frame), then [DONE].
func (s *Server) predictStream(c *gin.Context) {
	if s.cfg.DisableStreaming {
		s.noRoute(c)
		return
	}
	start := time.Now()
	spec, version, ok := s.openPredict(c)
	if !ok {
		return
	}
	defer s.streams.end()
	ctx := c.Request.Context()
	sctx, cancel := s.redisCtx(c)
	spec.Options.Stream = true
	sub, err := s.submit(sctx, c, spec, version, "")
	cancel()
	if err != nil {
		s.countUnanswered(ctx, err)
		s.respond(c, err)
		return
	}
	j := sub.Job
	f, err := store.Follow(ctx, s.followConfig(), s.deps.Store.Source(j.ID), "")
	if err != nil {
		// Nobody would see this job's answer.
		s.cancelAbandoned(ctx, j.ID)
		s.countUnanswered(ctx, err)
		s.respond(c, err)
		return
	}
	defer f.Close()
	s.metrics.streams.WithLabelValues("predict").Inc()
	defer s.metrics.streams.WithLabelValues("predict").Dec()
	out := &seedSink{w: s.startSSE(c), jobID: j.ID}
	timer := time.NewTimer(s.cfg.PredictTimeout)
	defer timer.Stop()
	// The relay is in the job's own trace already (the request's span
	// parents its send): no link.
	rctx, relay := s.startRelay(ctx, "", telemetry.JobID.String(j.ID))
	end, err := f.Run(rctx, out, timer.C)
	relay.end(ctx, out.events, end, err)
	if ctx.Err() != nil {
		s.cancelAbandoned(ctx, j.ID)
		s.countUnanswered(ctx, errClientGone)
		_ = c.Error(errClientGone)
		return
	}
	if err != nil {
		_ = c.Error(err)
	}
	switch end {
	case store.EndTimeout:
		out.fail(fmt.Sprintf("Prediction timed out after %s; job %s continues: poll GET /v1/jobs/%s for its answer", s.cfg.PredictTimeout, j.ID, j.ID))
	case store.EndGone:
		out.fail("The job " + j.ID + " was deleted")
	case store.EndSlow:
		_ = c.Error(store.ErrSlowSubscriber)
		out.fail("The stream fell behind and was dropped; job " + j.ID + " continues: poll GET /v1/jobs/" + j.ID)
	}
	if !out.ended && err == nil {
		out.fail("The stream ended early; job " + j.ID + " continues: poll GET /v1/jobs/" + j.ID)
	}
	_ = out.w.write("data: [DONE]\n\n")
	if out.completed {
		s.summary.record(false, time.Since(start), out.usage)
	} else {
		s.summary.record(!out.overBudget, 0, nil)
	}
}

// seedSink renders the seed's stream: data-only frames.
type seedSink struct {
	w     *sseWriter
	jobID string
	// events counts the job's events relayed (for the relay's span).
	events int
	// attempt is the attempt whose tokens are being relayed; tokens says
	// whether any of them went out.
	attempt   int
	tokens    bool
	ended     bool
	completed bool
	// overBudget: the job was refused at its start for its key's budget.
	overBudget bool
	usage      json.RawMessage
}

func (o *seedSink) data(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return o.w.write("data: " + string(b) + "\n\n")
}

// fail sends an error frame, once.
func (o *seedSink) fail(detail string) {
	if o.ended {
		return
	}
	o.ended = true
	_ = o.data(struct {
		Type   string `json:"type"`
		Detail string `json:"detail"`
	}{"error", detail})
}

func (o *seedSink) stop(err error) error {
	if err != nil {
		return err
	}
	return store.ErrStop
}

func (o *seedSink) Event(ev jobs.Event) error {
	o.events++
	switch ev.Type {
	case jobs.EventStarted:
		var d jobs.StartedData
		_ = json.Unmarshal(ev.Data, &d)
		if d.Attempt > 1 && o.tokens {
			o.fail(o.retryDetail(d.Attempt-1, "its worker stopped"))
			return store.ErrStop
		}
		o.attempt = d.Attempt
	case jobs.EventRetrying:
		if o.tokens {
			var d jobs.RetryingData
			_ = json.Unmarshal(ev.Data, &d)
			o.fail(o.retryDetail(d.Attempt, d.Reason))
			return store.ErrStop
		}
	case jobs.EventToken:
		var d jobs.TokenData
		if err := json.Unmarshal(ev.Data, &d); err != nil || d.Field != "answer" {
			return nil
		}
		if o.attempt != 0 && d.Attempt != o.attempt {
			return nil
		}
		o.tokens = true
		return o.data(struct {
			Type    string `json:"type"`
			Field   string `json:"field"`
			Content string `json:"content"`
		}{"token", "answer", d.Content})
	case jobs.EventCompleted:
		d, err := jobs.ParseCompleted(ev.Data)
		if err != nil || d.Result == nil {
			o.fail("The job completed but its result could not be read; poll GET /v1/jobs/" + o.jobID)
			return store.ErrStop
		}
		return o.complete(d.Result)
	case jobs.EventFailed, jobs.EventExpired:
		var d jobs.FailedData
		_ = json.Unmarshal(ev.Data, &d)
		o.failed(d.Error, "Prediction failed")
		return store.ErrStop
	case jobs.EventCancelled:
		o.fail("The job " + o.jobID + " was cancelled")
		return store.ErrStop
	}
	return nil
}

func (o *seedSink) retryDetail(attempt int, reason string) string {
	return fmt.Sprintf("Attempt %d failed after its answer began streaming (%s); job %s is being retried: poll GET /v1/jobs/%s for the final answer",
		attempt, reason, o.jobID, o.jobID)
}

func (o *seedSink) complete(r *jobs.Result) error {
	o.ended, o.completed, o.usage = true, true, r.Usage
	lat := r.LatencySeconds
	err := o.data(struct {
		Type           string          `json:"type"`
		Answer         string          `json:"answer"`
		Usage          json.RawMessage `json:"usage"`
		LatencySeconds float64         `json:"latency_seconds"`
	}{"complete", r.Answer("answer"), usageOf(r), lat})
	return o.stop(err)
}

// Snapshot ends the stream from the record (the job ended without its event
// reaching this stream).
func (o *seedSink) Snapshot(j *jobs.Job, _ string) error {
	switch {
	case j.Status == jobs.StatusCompleted && j.Result != nil:
		if o.tokens && j.Attempts > 1 {
			o.fail(o.retryDetail(j.Attempts-1, "retried"))
			return store.ErrStop
		}
		return o.complete(j.Result)
	case j.Status.Terminal():
		o.failed(j.Error, "Prediction "+string(j.Status))
		return store.ErrStop
	}
	return nil
}

// failed sends the error frame of a job that ended without an answer: what
// happened and why; a budget refusal in the words of the 429's detail.
func (o *seedSink) failed(e *jobs.Error, what string) {
	switch {
	case overBudget(e):
		o.overBudget = true
		what = budgetDetail(e)
	case e != nil:
		what += ": " + e.Message
	}
	o.fail(what + " (job " + o.jobID + ")")
}

func (o *seedSink) Heartbeat() error { return o.w.write(": ping\n\n") }

func (o *seedSink) Hold()        { o.w.hold() }
func (o *seedSink) Flush() error { return o.w.flush() }

func (o *seedSink) Reconnect(string) error {
	o.fail("The server is shutting down; job " + o.jobID + " continues: poll GET /v1/jobs/" + o.jobID + " for its answer")
	return nil
}

// batchItem is one result of the seed's POST /batch.
type batchItem struct {
	Question string  `json:"question"`
	Answer   *string `json:"answer"`
	Error    *string `json:"error"`
}

// batch is the seed's POST /batch: at most MaxBatchItems questions, each a
// job on the interactive queue, answered in order; one failure does not fail
// the others.
func (s *Server) batch(c *gin.Context) {
	body, err := readBody(c.Writer, c.Request, s.cfg.MaxBatchBodyBytes)
	if err != nil {
		s.respond(c, err)
		return
	}
	items, version, err := decodeBatchRequest(body, s.rules(c), s.cfg.MaxBatchItems)
	if err != nil {
		s.respond(c, err)
		return
	}
	if !s.streams.begin() {
		s.respond(c, store.ErrHubClosed)
		return
	}
	defer s.streams.end()
	ctx := c.Request.Context()
	results := make([]batchItem, len(items))
	ids := make([]string, len(items))
	for i, spec := range items {
		results[i].Question = spec.Question()
		sctx, cancel := s.redisCtx(c)
		sub, err := s.submit(sctx, c, spec, version, "")
		cancel()
		if err != nil {
			ae := s.classify(ctx, err)
			if ae.code != "queue_full" {
				// Redis trouble or a gone client: the rest would fail alike.
				for _, id := range ids[:i] {
					s.cancelAbandoned(ctx, id)
				}
				s.respond(c, err)
				return
			}
			msg := ae.message
			results[i].Error = &msg
			continue
		}
		ids[i] = sub.Job.ID
	}
	s.writeDeadline(c, s.cfg.PredictTimeout)
	start := time.Now()
	var wg sync.WaitGroup
	for i, id := range ids {
		if id == "" {
			s.summary.record(true, 0, nil)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.batchResult(ctx, results[i], id, start)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		_ = c.Error(errClientGone)
		c.Status(statusClientClosed)
		return
	}
	writeJSON(c, http.StatusOK, map[string]any{"results": results, "count": len(results)})
}

func (s *Server) batchResult(ctx context.Context, item batchItem, id string, start time.Time) batchItem {
	j, err := s.await(ctx, id, s.cfg.PredictTimeout)
	if err == nil {
		if ae := s.outcomeError(j, s.cfg.PredictTimeout); ae != nil {
			err = ae
		}
	}
	if err != nil {
		msg := s.classify(ctx, err).message
		if errors.Is(err, errClientGone) {
			msg = "client closed the request"
		}
		item.Error = &msg
		s.countUnanswered(ctx, err)
		return item
	}
	a := j.Result.Answer("answer")
	item.Answer = &a
	s.summary.record(false, time.Since(start), j.Result.Usage)
	return item
}
