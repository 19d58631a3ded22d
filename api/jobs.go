package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/telemetry"
	"github.com/rs/zerolog"
)

// jobView is a job as GET /v1/jobs/{id} shows it.
type jobView struct {
	ID     string      `json:"id"`
	Status jobs.Status `json:"status"`
	Queue  string      `json:"queue"`
	// Program is the program as the request named it (name[@alias]), and
	// ProgramVersion the version that resolved to at submit ("" for the
	// built-in qa program).
	Program        string      `json:"program"`
	ProgramVersion string      `json:"program_version,omitempty"`
	Inputs         jobs.Inputs `json:"inputs"`
	// Question is qa's one input, kept where clients of the QA-only
	// service read it; absent for other programs.
	Question   string       `json:"question,omitempty"`
	Attempts   int          `json:"attempts"`
	Result     *jobs.Result `json:"result"`
	Error      *jobs.Error  `json:"error"`
	CreatedAt  time.Time    `json:"created_at"`
	StartedAt  *time.Time   `json:"started_at"`
	FinishedAt *time.Time   `json:"finished_at"`
	Links      jobLinks     `json:"links"`
}

type jobLinks struct {
	Self   string `json:"self"`
	Events string `json:"events"`
	Cancel string `json:"cancel"`
}

// accepted is a 202's body. Its fields are in the order of the map it
// replaced, whose keys encoding/json sorted (the bytes clients get stay).
type accepted struct {
	ID     string      `json:"id"`
	Links  jobLinks    `json:"links"`
	Status jobs.Status `json:"status"`
}

// acceptedBody is the 202 body of job id, in status.
func acceptedBody(id string, status jobs.Status) accepted {
	return accepted{ID: id, Links: linksFor(id), Status: status}
}

func linksFor(id string) jobLinks {
	self := "/v1/jobs/" + id
	return jobLinks{Self: self, Events: self + "/events", Cancel: self + "/cancel"}
}

func viewOf(j *jobs.Job) jobView {
	return jobView{
		ID: j.ID, Status: j.Status, Queue: j.Spec.Queue, Attempts: j.Attempts,
		Program: j.Spec.Program, ProgramVersion: j.Spec.ProgramVersion, Inputs: j.Spec.Inputs, Question: j.Spec.Question(),
		Result: j.Result, Error: j.Error, CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt,
		Links: linksFor(j.ID),
	}
}

// jobSpec reads a job's spec for the dashboard (nil when it cannot).
func (s *Server) jobSpec(id string) *jobs.Spec {
	// asynqmon's formatters take no context; the read is one HGETALL.
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RedisTimeout)
	defer cancel()
	j, err := s.deps.Store.Get(ctx, id)
	if err != nil {
		return nil
	}
	return &j.Spec
}

// redisCtx bounds the Redis work of a request that does not wait.
func (s *Server) redisCtx(c *gin.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request.Context(), s.cfg.RedisTimeout)
}

// limits are what a request's spec is validated against.
func (s *Server) limits() jobs.Limits {
	return jobs.Limits{MaxQuestionChars: s.cfg.MaxQuestionChars, MaxInputBytes: int(s.cfg.MaxInputBytes)}
}

// rules are what a request's spec is checked against: the limits, and the
// registry (within the request's Redis time) for its program.
func (s *Server) rules(c *gin.Context) specRules {
	return specRules{lim: s.limits(), resolve: func(ref string) (resolvedProgram, error) {
		ctx, cancel := s.redisCtx(c)
		defer cancel()
		return s.resolveProgram(ctx, ref)
	}}
}

// submitRequest is the request's job. The spec's server part is set here,
// and only here: the request's owner, the interactive queue, and version,
// its program's version as resolved.
func submitRequest(c *gin.Context, spec jobs.ClientSpec, version, idempotencyKey string) store.SubmitRequest {
	return store.SubmitRequest{
		Spec: jobs.Spec{ClientSpec: spec,
			ServerSpec: jobs.ServerSpec{Owner: owner(c), Queue: jobs.QueueInteractive, ProgramVersion: version}},
		IdempotencyKey: idempotencyKey,
	}
}

// submit submits a job for the request's owner (submitRequest) and counts
// it.
func (s *Server) submit(ctx context.Context, c *gin.Context, spec jobs.ClientSpec, version, idempotencyKey string) (*store.Submitted, error) {
	req := submitRequest(c, spec, version, idempotencyKey)
	ctx, span := s.startSend(ctx, &req.Spec)
	sub, err := s.deps.Client.Submit(ctx, req)
	s.endSend(ctx, span, telemetry.JobID, submittedID(sub), err)
	if err != nil {
		return nil, err
	}
	s.countSubmitted(sub)
	return sub, nil
}

func (s *Server) countSubmitted(sub *store.Submitted) {
	if !sub.Replayed {
		s.metrics.submitted.WithLabelValues(sub.Job.Spec.Queue).Inc()
	}
}

// submitJob is POST /v1/jobs: 202 {id, status, links} with Location and
// Retry-After (when to look first). With ?wait= (as GET ?wait= takes it) it
// waits for the job's end: 200 with the job, as GET /v1/jobs/{id} shows it,
// if it ended within the wait, else the 202 with its status as it then is.
func (s *Server) submitJob(c *gin.Context) {
	wait, err := parseWait(c.Query("wait"), s.cfg.MaxWait)
	if err != nil {
		s.respond(c, err)
		return
	}
	idem, err := parseIdempotencyKey(c.GetHeader("Idempotency-Key"))
	if err != nil {
		s.respond(c, err)
		return
	}
	body, err := readBody(c.Writer, c.Request, s.cfg.MaxBodyBytes)
	if err != nil {
		s.respond(c, err)
		return
	}
	// Token events unless the body says otherwise, and never while
	// streaming is off.
	spec, version, err := decodeJobRequest(body, s.rules(c), jobs.Options{Stream: !s.cfg.DisableStreaming})
	if err != nil {
		s.respond(c, err)
		return
	}
	spec.Options.Stream = spec.Options.Stream && !s.cfg.DisableStreaming
	var sub *store.Submitted
	if wait > 0 && s.streams.begin() {
		defer s.streams.end()
		sub, err = s.submitWait(c, spec, version, idem, wait)
	} else {
		ctx, cancel := s.redisCtx(c)
		sub, err = s.submit(ctx, c, spec, version, idem)
		cancel()
	}
	if err != nil {
		s.respond(c, err)
		return
	}
	j := sub.Job
	if sub.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	if j.Status.Terminal() {
		writeJSON(c, http.StatusOK, viewOf(j))
		return
	}
	c.Header("Location", linksFor(j.ID).Self)
	c.Header("Retry-After", retryAfter(s.cfg.PollAfter))
	writeJSON(c, http.StatusAccepted, acceptedBody(j.ID, j.Status))
}

// submitAndFollow submits req and follows the job from before it exists
// (store.Client.SubmitWait), inside the enqueue span.
func (s *Server) submitAndFollow(ctx context.Context, req store.SubmitRequest) (*store.Submitted, *store.Follower[*jobs.Job], error) {
	ctx, span := s.startSend(ctx, &req.Spec)
	sub, f, err := s.deps.Client.SubmitWait(ctx, s.deps.Hub, req)
	s.endSend(ctx, span, telemetry.JobID, submittedID(sub), err)
	return sub, f, err
}

// submitWait submits a job and waits up to wait for its end, the way GET
// ?wait= waits (awaitEnd); the Submitted's Job is the job as it then is.
// Once the job is accepted, a wait that fails (the key's long polls all
// taken, Redis, the client gone) ends with the job as submitted: its client
// must learn its id, not get an error that reads as "not submitted".
func (s *Server) submitWait(c *gin.Context, spec jobs.ClientSpec, version, idempotencyKey string, wait time.Duration) (*store.Submitted, error) {
	ctx, cancel := s.redisCtx(c)
	sub, f, err := s.submitAndFollow(ctx, submitRequest(c, spec, version, idempotencyKey))
	cancel()
	if sub == nil {
		return nil, err
	}
	s.countSubmitted(sub)
	if f == nil {
		s.logWaitEnd(c, sub.Job.ID, err)
		return sub, nil
	}
	defer f.Close()
	j, err := s.awaitEnd(c, f, wait)
	if err != nil {
		s.logWaitEnd(c, sub.Job.ID, err)
		return sub, nil
	}
	sub.Job = j
	return sub, nil
}

// logWaitEnd logs why a submit's wait failed; a client that went away or a
// key over its long polls is no failure of the service's.
func (s *Server) logWaitEnd(c *gin.Context, id string, err error) {
	var ae *apiError
	if err == nil || c.Request.Context().Err() != nil || errors.As(err, &ae) {
		return
	}
	zerolog.Ctx(c.Request.Context()).Warn().Err(err).Str("job_id", id).Msg("submit and wait: the wait failed; answered 202")
}

// loadJob reads the job named in the path, as its owner may see it: an
// invalid id, a missing job and another owner's job are all 404.
func (s *Server) loadJob(ctx context.Context, c *gin.Context) (*jobs.Job, error) {
	id, err := parseJobID(c.Param("id"))
	if err != nil {
		return nil, err
	}
	j, err := s.deps.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.Spec.Owner != owner(c) {
		return nil, errNotFound("job")
	}
	return j, nil
}

// getJob is GET /v1/jobs/{id}, with ?wait= long-polling: the answer comes
// when the job ends or the wait is over, whichever is first. HEAD does not
// wait.
func (s *Server) getJob(c *gin.Context) {
	wait, err := parseWait(c.Query("wait"), s.cfg.MaxWait)
	if err != nil {
		s.respond(c, err)
		return
	}
	var j *jobs.Job
	if wait > 0 && !isHead(c) {
		j, err = s.waitJob(c, wait)
	} else {
		ctx, cancel := s.redisCtx(c)
		j, err = s.loadJob(ctx, c)
		cancel()
	}
	if err != nil {
		s.respond(c, err)
		return
	}
	writeJSON(c, http.StatusOK, viewOf(j))
}

// waitLeaseAfter is how long a long poll waits before it takes a lease
// (Config.MaxWaitsPerKey): most waits end sooner, and cost no Redis round
// trip for it.
const waitLeaseAfter = time.Second

// errDraining ends a wait when shutdown begins.
var errDraining = errors.New("server shutting down")

// waitJob reads the job named in the path, as its owner may see it
// (loadJob), and if it has not ended waits up to wait for its end
// (awaitEnd); it returns the job as it then is. The wait subscribes before
// it reads, so the record is read once, and once more when the job ends or
// the wait is over (store.Jobs.OpenWait).
func (s *Server) waitJob(c *gin.Context, wait time.Duration) (*jobs.Job, error) {
	id, err := parseJobID(c.Param("id"))
	if err != nil {
		return nil, err
	}
	if !s.streams.begin() {
		ctx, cancel := s.redisCtx(c)
		defer cancel()
		return s.loadJob(ctx, c)
	}
	defer s.streams.end()
	octx, cancel := s.redisCtx(c)
	f, err := s.deps.Store.OpenWait(octx, s.deps.Hub, id)
	cancel()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if f.Record().Spec.Owner != owner(c) {
		return nil, errNotFound("job")
	}
	return s.awaitEnd(c, f, wait)
}

// awaitEnd waits up to wait for the end of f's job (through the hub: pub/sub,
// not a loop) and returns the job as it then is. Past waitLeaseAfter the
// wait holds a lease (holdWait); refused one, it ends with 429. Shutdown
// cuts the wait short.
func (s *Server) awaitEnd(c *gin.Context, f *store.Follower[*jobs.Job], wait time.Duration) (*jobs.Job, error) {
	if j := f.Record(); j.Status.Terminal() {
		return j, nil
	}
	s.writeDeadline(c, wait)
	// The wait is bounded even if Redis never answers the last read.
	ctx, cancel := context.WithTimeout(c.Request.Context(), wait+s.cfg.RedisTimeout)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	held, who := make(chan error, 1), caller(c)
	go func() { held <- s.holdWait(ctx, stop, who) }()
	j, err := f.Wait(ctx, wait)
	stop(nil)
	// The lease is given back before the answer, so a client's next wait
	// finds it free.
	if herr := <-held; err != nil && herr != nil {
		if errors.Is(herr, errDraining) {
			// Shutting down: answer with what there is.
			return s.getQuick(c, f.Record().ID)
		}
		return nil, herr
	}
	return j, err
}

// holdWait runs beside a long poll until ctx ends. It stops the wait (stop,
// and returns why) when shutdown begins, or when the poll has waited
// waitLeaseAfter and its caller already holds Config.MaxWaitsPerKey waits;
// otherwise it holds the wait's lease until the wait ends. A 429 after a
// second of waiting, rather than the job as it is: a client given an
// unfinished job would poll again at once, so the cap would turn waits into
// a tight polling loop instead of slowing the key down.
func (s *Server) holdWait(ctx context.Context, stop context.CancelCauseFunc, who string) error {
	t := time.NewTimer(waitLeaseAfter)
	defer t.Stop()
	select {
	case <-s.draining:
		stop(errDraining)
		return errDraining
	case <-ctx.Done():
		return nil
	case <-t.C:
	}
	// Not ctx: a lease taken in Redis is always given back here.
	l, ok, err := s.acquireLease(context.WithoutCancel(ctx), waitLeasesKey(who), s.cfg.MaxWaitsPerKey)
	switch {
	case err != nil:
		err = fmt.Errorf("count waits: %w", err)
	case !ok:
		err = s.tooMany("too_many_waits",
			fmt.Sprintf("this key already holds %d long polls (WAIT_MAX_PER_KEY); retry later, or follow the job's events instead",
				s.cfg.MaxWaitsPerKey))
	}
	if err != nil {
		stop(err)
		return err
	}
	defer l.release()
	select {
	case <-s.draining:
		stop(errDraining)
		return errDraining
	case <-ctx.Done():
		return nil
	}
}

// getQuick reads a job within RedisTimeout.
func (s *Server) getQuick(c *gin.Context, id string) (*jobs.Job, error) {
	ctx, cancel := s.redisCtx(c)
	defer cancel()
	return s.deps.Store.Get(ctx, id)
}

// cancelJob is POST /v1/jobs/{id}/cancel: 200 with the job, now cancelled;
// 409 when it had already ended otherwise.
func (s *Server) cancelJob(c *gin.Context) {
	ctx, cancel := s.redisCtx(c)
	defer cancel()
	j, err := s.loadJob(ctx, c)
	if err != nil {
		s.respond(c, err)
		return
	}
	if j.Status.Terminal() && j.Status != jobs.StatusCancelled {
		s.respond(c, &apiError{status: http.StatusConflict, code: "job_ended", message: "job has already ended: " + string(j.Status)})
		return
	}
	j, err = s.deps.Client.Cancel(ctx, j.ID)
	if err != nil && !errors.Is(err, store.ErrTerminal) {
		s.respond(c, err)
		return
	}
	if j.Status != jobs.StatusCancelled {
		// It ended on its own between the read and the cancel.
		s.respond(c, &apiError{status: http.StatusConflict, code: "job_ended", message: "job has already ended: " + string(j.Status)})
		return
	}
	writeJSON(c, http.StatusOK, viewOf(j))
}

// deleteJob is DELETE /v1/jobs/{id}: cancels the job if it is still going,
// then removes its record and events. 204.
func (s *Server) deleteJob(c *gin.Context) {
	ctx, cancel := s.redisCtx(c)
	defer cancel()
	j, err := s.loadJob(ctx, c)
	if err != nil {
		s.respond(c, err)
		return
	}
	if err := s.deps.Client.Delete(ctx, j.ID); err != nil {
		s.respond(c, err)
		return
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
}
