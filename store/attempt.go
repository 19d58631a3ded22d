package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
)

// StartOutcome is what Start decided.
type StartOutcome int

// Start outcomes.
const (
	// Started: run the attempt.
	Started StartOutcome = iota
	// Ended: the job had already ended (or has just expired or given up);
	// drop the task.
	Ended
	// Gone: the record no longer exists; drop the task.
	Gone
	// OverBudget: the owner's daily token budget is spent; the job has just
	// ended failed, saying so. Drop the task.
	OverBudget
	// Foreign: the task is not the job's current one (a recoverer put the
	// job back under a new task when this task's worker was lost). Drop it
	// quietly: the record is not touched.
	Foreign
)

// Attempt is one run of a job by a worker: the handle through which the worker
// reports progress. Its methods refuse to act for a stale attempt.
type Attempt struct {
	store *Jobs
	JobID string
	// Spec is what the job runs, from its record.
	Spec jobs.Spec
	// Number counts the starts of the job, from 1.
	Number int
	// Last is true when a retryable failure of this attempt still fails the job.
	Last bool
	// LMCalls counts this attempt's LM calls, failed ones included (each may
	// have cost tokens). The worker sets it before a failed attempt's end
	// write (Fail, Retry, Defer), which adds it to the job's total; Complete
	// takes the count from the result's provenance instead.
	LMCalls int
	// Checkpoints are the stages of a multi-stage job that earlier attempts
	// finished, in stage order from the first: this attempt resumes after
	// them.
	Checkpoints []jobs.Checkpoint
	// Due is when this attempt became due: the job's creation for its first
	// attempt, else when the last put-back's delay ran out (a retry's or a
	// deferral's; a recovered job's put-back itself). The worker's queued
	// span starts there.
	Due time.Time

	// earlierLMCalls are the LM calls the job's earlier attempts recorded.
	earlierLMCalls int
	// checkpointedCalls are this attempt's LM calls its Checkpoint writes
	// have added to the job's already; its end write adds the rest.
	checkpointedCalls int
	// checkpointed counts the stages whose Checkpoint Redis acknowledged.
	checkpointed int
	// trail is what Complete publishes before the completed event (Trail).
	trail []Piece
	// cache is what Complete sets with the result (Cache).
	cache []CacheEntry
	// streamMu orders Token and Reset; written counts the stream writes
	// Redis acknowledged, and numbers the next one (see Token).
	streamMu sync.Mutex
	written  int
}

// Start begins the next attempt of job id on worker workerID, run by the
// task Submit enqueued (its id is the job's). See StartTask.
func (s *Jobs) Start(ctx context.Context, id, workerID string, maxWait time.Duration) (*Attempt, StartOutcome, error) {
	return s.StartTask(ctx, id, id, workerID, maxWait)
}

// StartTask begins the next attempt of job id on worker workerID, run by the
// asynq task taskID: a task the record does not name (Foreign) is refused.
// maxWait > 0 expires a job that waited longer than that for its first
// start; a job whose owner has spent Config.TokenBudgetPerDay today ends
// failed (OverBudget). The job joins the worker's index of running jobs
// (jobs.WorkerJobsKey) until the attempt ends or goes back.
func (s *Jobs) StartTask(ctx context.Context, id, taskID, workerID string, maxWait time.Duration) (*Attempt, StartOutcome, error) {
	now := s.now()
	expired := mustJSON(jobs.ExpiredData{Error: &jobs.Error{Code: "expired", Message: "not started within " + maxWait.String()}})
	gaveUp := mustJSON(jobs.FailedData{
		Error:    &jobs.Error{Code: "attempts_exhausted", Message: "gave up after " + strconv.Itoa(s.cfg.MaxAttempts) + " attempts: the last one was lost (worker stopped or timed out)"},
		Attempts: s.cfg.MaxAttempts,
	})
	var overBudget string
	if s.cfg.TokenBudgetPerDay > 0 {
		overBudget = mustJSON(jobs.FailedData{Error: jobs.BudgetSpent(s.cfg.TokenBudgetPerDay, now)})
	}
	reply, err := s.runAt(ctx, now, "start", id, [2]string{jobs.WorkerJobsKey(workerID), ""}, s.cfg.MaxAttempts, ms(maxWait), workerID, ms(s.cfg.ResultTTL), expired, gaveUp,
		s.cfg.TokenBudgetPerDay, jobs.UsageDay(now), overBudget, taskID)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, Gone, nil
	case errors.Is(err, ErrTerminal):
		return nil, Ended, nil
	case err != nil:
		return nil, Ended, err
	}
	switch reply[0] {
	case "started":
	case "over_budget":
		return nil, OverBudget, nil
	case "foreign":
		return nil, Foreign, nil
	default:
		return nil, Ended, nil
	}
	n, _ := strconv.Atoi(reply[1])
	earlier, _ := strconv.Atoi(reply[2])
	rec := make(map[string]string, (len(reply)-3)/2)
	for i := 3; i+1 < len(reply); i += 2 {
		rec[reply[i]] = reply[i+1]
	}
	spec, err := decodeSpec(rec)
	if err != nil {
		// The attempt is counted; asynq runs the task again, and the
		// record's last attempt fails the job if this goes on.
		return nil, Ended, fmt.Errorf("start job %s: %w", id, err)
	}
	cps, err := checkpoints(rec)
	if err != nil {
		return nil, Ended, fmt.Errorf("start job %s: %w", id, err)
	}
	return &Attempt{store: s, JobID: id, Spec: spec, Number: n, Last: n >= s.cfg.MaxAttempts, earlierLMCalls: earlier, Checkpoints: cps,
		Due: dueAt(rec)}, Started, nil
}

// decodeSpec reads a start's reply's spec (decodeJob's, without the rest
// of the record).
func decodeSpec(rec map[string]string) (jobs.Spec, error) {
	v, ok := rec["spec"]
	if !ok {
		return legacySpec(rec), nil
	}
	spec, err := jobs.ParseSpec([]byte(v))
	if err != nil {
		return jobs.Spec{}, fmt.Errorf("decode spec: %w", err)
	}
	return spec, nil
}

// dueAt is when a start's attempt became due: the record's due_at (its
// last put-back's), else its created_at.
func dueAt(rec map[string]string) time.Time {
	v := rec["due_at"]
	if v == "" {
		v = rec["created_at"]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// checkpointField is the record's field of the checkpoint of the stage at
// index i.
func checkpointField(i int) string { return "checkpoint:" + strconv.Itoa(i) }

// checkpoints reads a record's checkpoints: stage 0's, 1's, … up to the
// first stage without one.
func checkpoints(rec map[string]string) ([]jobs.Checkpoint, error) {
	var cps []jobs.Checkpoint
	for i := 0; ; i++ {
		raw, ok := rec[checkpointField(i)]
		if !ok {
			return cps, nil
		}
		var cp jobs.Checkpoint
		if err := json.Unmarshal([]byte(raw), &cp); err != nil {
			return nil, fmt.Errorf("decode checkpoint %d: %w", i, err)
		}
		cps = append(cps, cp)
	}
}

// Checkpoint records that the stage at index (from 0) of a multi-stage job
// has finished, with its outputs and usage, and sends a stage_completed
// event: a later attempt's start hands it back (Attempt.Checkpoints), so a
// retry resumes after it. The stage's LM calls count toward the job's now.
// Like the other writes it returns ErrStale for an attempt a newer one has
// replaced and ErrTerminal once the job has ended; a repeat after a lost
// reply writes nothing twice.
func (a *Attempt) Checkpoint(ctx context.Context, index int, cp *jobs.Checkpoint) error {
	data := mustJSON(jobs.StageCompletedData{Stage: cp.Stage, Outputs: cp.Outputs})
	if _, err := a.store.run(ctx, "stage", a.JobID, [2]string{}, a.Number, checkpointField(index), mustJSON(cp), data, cp.LMCalls); err != nil {
		return err
	}
	// Acknowledged, whether by this call or by an earlier one whose reply
	// was lost (the script then answers a repeat): its calls are counted.
	if index >= a.checkpointed {
		a.checkpointed = index + 1
		a.checkpointedCalls += cp.LMCalls
	}
	return nil
}

// Token publishes the next piece of an output field. It returns ErrStale or
// ErrTerminal when the attempt should stop (cancelled, or superseded).
//
// After any other error (Redis unreachable), the caller may repeat the same
// write: each write carries its number within the attempt, so one that Redis
// ran before the connection dropped is not published twice. The next write
// must then be that repeat, with the same field and content.
func (a *Attempt) Token(ctx context.Context, field, content string) error {
	return a.StageToken(ctx, "", field, content)
}

// StageToken is Token for a field of stage of a multi-stage program; the
// event names the stage ("": a single-stage program's, named by none).
func (a *Attempt) StageToken(ctx context.Context, stage, field, content string) error {
	return a.streamWrite(ctx, "token", mustJSON(jobs.TokenData{Attempt: a.Number, Stage: stage, Field: field, Content: content}))
}

// Reset tells clients to drop what this attempt has streamed so far (the
// program is starting over within the attempt); it sends a retrying event
// without changing the job's status. It is numbered with the tokens: a
// repeat after an error is published once, as with Token.
func (a *Attempt) Reset(ctx context.Context, reason string) error {
	return a.StageReset(ctx, "", reason)
}

// StageReset is Reset for what stage of a multi-stage program streamed:
// the event names the stage, whose partial text alone clients drop.
func (a *Attempt) StageReset(ctx context.Context, stage, reason string) error {
	return a.streamWrite(ctx, "reset", mustJSON(jobs.RetryingData{Attempt: a.Number, Stage: stage, Reason: reason}))
}

func (a *Attempt) streamWrite(ctx context.Context, op, data string) error {
	a.streamMu.Lock()
	defer a.streamMu.Unlock()
	if _, err := a.store.run(ctx, op, a.JobID, [2]string{}, a.Number, data, a.written+1); err != nil {
		return err
	}
	a.written++
	return nil
}

// Retry records that this attempt failed and the job will run again after
// delay.
func (a *Attempt) Retry(ctx context.Context, reason *jobs.Error, delay time.Duration) error {
	return a.putBack(ctx, "retry", reason, delay)
}

// Defer puts the job back to run after delay without counting this attempt
// (the LM rate limit asked us to wait longer than is worth holding a slot).
func (a *Attempt) Defer(ctx context.Context, reason *jobs.Error, delay time.Duration) error {
	return a.putBack(ctx, "defer", reason, delay)
}

func (a *Attempt) putBack(ctx context.Context, op string, reason *jobs.Error, delay time.Duration) error {
	data := mustJSON(jobs.RetryingData{Attempt: a.Number, Reason: reason.Message, RetryInMS: delay.Milliseconds()})
	_, err := a.store.run(ctx, op, a.JobID, [2]string{}, a.Number, mustJSON(reason), data, a.uncountedCalls(a.LMCalls), ms(delay))
	return err
}

// uncountedCalls is what of the attempt's n LM calls its checkpoints have
// not added to the job's yet.
func (a *Attempt) uncountedCalls(n int) int { return max(n-a.checkpointedCalls, 0) }

// Complete records the result and ends the job, adding tokens (what the run
// used) to the owner's usage of the day (see [jobs.UsageKey]) and r (its
// provenance, Tokens and Cost) to the usage accounting's hour (see
// [Jobs.UsageArgs]). r's
// provenance comes with this attempt's LM calls; the record gets
// [Attempt.Recorded] of it, encoded once for the record and the completed
// event, and returned as it was recorded. r is not changed, so a repeat
// after an error (Redis unreachable) records the same. ErrTerminal means it
// had already ended (a cancel won the race, another run finished first, or
// this one did and the reply was lost); ErrStale that a newer attempt runs
// it, so this result is not recorded and its tokens not counted.
func (a *Attempt) Complete(ctx context.Context, r *jobs.Result, tokens int64) (json.RawMessage, error) {
	res, err := json.Marshal(a.Recorded(r))
	if err != nil {
		return nil, fmt.Errorf("complete job %s: encode result: %w", a.JobID, err)
	}
	now := a.store.now()
	args := []any{a.Number, ms(a.store.cfg.ResultTTL), res,
		tokens, jobs.UsageDay(now), ms(jobs.UsageTTL), a.uncountedCalls(r.Provenance.LMCalls)}
	args = append(args, a.store.UsageArgs(now, a.Spec.Owner, r)...)
	args = append(args, len(a.cache))
	for _, e := range a.cache {
		args = append(args, e.Key, e.Value, ms(e.TTL))
	}
	for _, p := range a.trail {
		args = append(args, p.event(a.Number)...)
	}
	_, err = a.store.run(ctx, "complete", a.JobID, [2]string{}, args...)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Piece is a piece of streamed text that Complete publishes with the result
// (Attempt.Trail): a token of Field, or, with Field "", a reset whose
// Content is the reason.
type Piece struct{ Stage, Field, Content string }

// event is the piece's event type and data, as StageToken and StageReset
// send them.
func (p Piece) event(attempt int) []any {
	if p.Field == "" {
		return []any{string(jobs.EventRetrying), mustJSON(jobs.RetryingData{Attempt: attempt, Stage: p.Stage, Reason: p.Content})}
	}
	return []any{string(jobs.EventToken), mustJSON(jobs.TokenData{Attempt: attempt, Stage: p.Stage, Field: p.Field, Content: p.Content})}
}

// Trail has Complete publish pieces, in order, before the completed event
// and in the same write: the last of a run's streamed text costs no write
// of its own. Pieces a token write may have published already (one whose
// reply was lost) must go out through StageToken's repeat instead.
func (a *Attempt) Trail(pieces []Piece) { a.trail = pieces }

// CacheEntry is a key Complete sets with the result: SET Key Value PX TTL
// (no PX for a TTL under a millisecond). Complete writes it for the LM
// cache (lmclient.CacheWrite), whose keys, contents and TTLs are its own:
// the record only carries them, a round trip fewer than their own write.
type CacheEntry struct {
	Key   string
	Value []byte
	TTL   time.Duration
}

// Cache has Complete set entries in its write, and only if the result is
// recorded: a result refused (ErrTerminal, ErrStale) sets none.
func (a *Attempt) Cache(entries []CacheEntry) { a.cache = entries }

// Recorded returns a copy of r, whose provenance carries this attempt's LM
// calls, as Complete records it: counting the job's attempts and the LM
// calls of all of them.
func (a *Attempt) Recorded(r *jobs.Result) *jobs.Result {
	rec := *r
	rec.Provenance = r.Provenance.Counted(a.Number, a.earlierLMCalls)
	return &rec
}

// Cancelled is what the attempt writes when its run stopped for a cancel:
// nothing, since the cancel has ended the record already (and a newer
// attempt's run, if that is why it stopped, writes its own end).
func (*Attempt) Cancelled(context.Context) error { return nil }

// Fail ends the job as failed with reason. Like Complete, it returns
// ErrTerminal if the job had already ended and ErrStale if a newer attempt
// runs it.
func (a *Attempt) Fail(ctx context.Context, reason *jobs.Error) error {
	data := mustJSON(jobs.FailedData{Error: reason, Attempts: a.Number})
	_, err := a.store.run(ctx, "fail", a.JobID, [2]string{}, a.Number, ms(a.store.cfg.ResultTTL), data, a.uncountedCalls(a.LMCalls), "error", mustJSON(reason))
	return err
}
