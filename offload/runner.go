package offload

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/qaqueue/qaqueue/programrun"
	"github.com/rs/zerolog"
)

// Runner moves provider-mode batches on. It is safe for concurrent use;
// one offload task runs a given batch at a time (its task id is the
// batch's).
type Runner struct {
	cfg  Config
	deps Deps
	log  zerolog.Logger
}

// New returns a runner.
func New(cfg Config, deps Deps) (*Runner, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Batches == nil, deps.Programs == nil, deps.LM == nil, deps.Provider == nil:
		return nil, errors.New("new offload runner: Batches, Programs, LM and Provider are required")
	}
	return &Runner{cfg: cfg, deps: deps, log: deps.Log.With().Str("component", "offload").Logger()}, nil
}

// Config returns the effective configuration, defaults filled in.
func (r *Runner) Config() Config { return r.cfg }

// Run moves batch id's provider work on as far as it can now: plans and
// uploads a round, creates its provider batches, looks at them, downloads
// and records their answers, and starts the next round. wait > 0 asks to
// run again after wait (the round's provider batches are still running);
// 0 means no provider work is left (or the batch is gone). An error leaves
// the state where it was: run again, it resumes.
func (r *Runner) Run(ctx context.Context, id string) (wait time.Duration, err error) {
	bt, err := r.deps.Batches.Get(ctx, id)
	if errors.Is(err, batches.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	st, chunks, err := r.deps.Batches.Offload(ctx, id)
	if err != nil || st.Done {
		return 0, err
	}
	b := &run{r: r, bt: bt, st: st, chunks: chunks, log: r.log.With().Str("batch_id", id).Logger()}
	b.c, err = r.deps.Programs.Program(ctx, programrun.ProgramName(bt.Spec.Program), bt.Spec.ProgramVersion)
	if errors.Is(err, jobs.ErrProgramVersionGone) {
		// Pruned while the batch waited: no retry brings it back.
		reason := &jobs.Error{Code: jobs.CodeProgramVersionGone, Message: err.Error()}
		return 0, b.finish(ctx, func(ctx context.Context) error {
			return b.sweep(ctx, func(a *batches.ItemAttempt) error { return a.Fail(ctx, reason) })
		})
	}
	if err != nil {
		return 0, fmt.Errorf("get program of batch %s: %w", id, err)
	}
	wait, err = b.step(ctx)
	var ae *lmclient.APIError
	if err != nil && ctx.Err() == nil && lmclient.Retryable(err) && errors.As(err, &ae) {
		// The provider is down or busy: look again later, without spending
		// the task's retries; the provider object says why.
		b.progressError(ctx, err)
		b.log.Warn().Err(err).Msg("provider unavailable; the round waits")
		return max(ae.RetryAfter, r.cfg.backoff(b.st.Polls+1)), nil
	}
	return wait, err
}

// run is one Run of one batch.
type run struct {
	r      *Runner
	bt     *jobs.Batch
	c      *programfile.Compiled
	st     batches.OffloadState
	chunks []batches.OffloadChunk
	log    zerolog.Logger
	// deferred are the items the last round deferred to this one (a
	// fallback round's items): index → attempt.
	deferred map[int]int
}

func (b *run) id() string { return b.bt.ID }

// page reads items [lo, hi) of the batch: their result slots ("" for an
// empty one) and their items.
func (b *run) page(ctx context.Context, lo, hi int) ([]string, []*jobs.BatchItem, error) {
	results, err := b.r.deps.Batches.Results(ctx, b.id(), lo, hi)
	if err != nil {
		return nil, nil, err
	}
	its, err := b.r.deps.Batches.Items(ctx, b.id(), lo, hi)
	if err != nil {
		return nil, nil, err
	}
	return results, its, nil
}

// stages are the program's stages.
func (b *run) stages() []programfile.Stage { return b.c.Built.Stages }

func (b *run) multi() bool { return b.c != nil && len(b.stages()) > 1 }

// cancelling reports whether the batch is being cancelled.
func (b *run) cancelling() bool { return b.bt.Status == jobs.BatchCancelling }

// step runs the state machine until it must wait or has nothing left.
func (b *run) step(ctx context.Context) (time.Duration, error) {
	if b.bt.Status.Terminal() {
		// Ended (its window, or a cancel with nothing running): stop what
		// the provider still runs for it, drop its files.
		return 0, b.abandon(ctx)
	}
	for {
		if b.st.Round == 0 {
			b.st = batches.OffloadState{Round: 1, Phase: jobs.ProviderUploading}
			if err := b.save(ctx); err != nil {
				return 0, err
			}
			// Written before the first planning pass: from here on the
			// batch's window waits for the provider (batch.lua,
			// provider_pending).
			if err := b.publish(ctx, nil); err != nil {
				return 0, err
			}
			b.r.deps.Metrics.round()
		}
		if b.st.Fallback && b.deferred == nil {
			d, err := b.r.deps.Batches.Deferred(ctx, b.id(), b.st.Round-1)
			if err != nil {
				return 0, err
			}
			b.deferred = d
		}
		if !b.st.Planned {
			stop, err := b.beforeRound(ctx)
			if err != nil || stop {
				return 0, err
			}
			if err := b.plan(ctx); err != nil {
				return 0, err
			}
		}
		if b.cancelling() && !b.st.Cancelled {
			if err := b.cancelProvider(ctx); err != nil {
				return 0, err
			}
		}
		if !b.st.Cancelled {
			for k := range b.chunks {
				if err := b.upload(ctx, k); err != nil {
					return 0, err
				}
				if err := b.create(ctx, k); err != nil {
					return 0, err
				}
			}
		}
		wait, err := b.poll(ctx)
		if err != nil || wait > 0 {
			return wait, err
		}
		for k := range b.chunks {
			if err := b.download(ctx, k); err != nil {
				return 0, err
			}
		}
		if err := b.publishCost(ctx); err != nil {
			return 0, err
		}
		if b.st.Cancelled {
			return 0, b.finish(ctx, b.sweepCancelled)
		}
		if err := b.advance(ctx); err != nil || b.st.Done {
			return 0, err
		}
	}
}

// beforeRound ends the provider work before a round starts when the batch
// is being cancelled (its items are counted cancelled) or its owner's
// token budget is spent (they fail, saying so): stop true.
func (b *run) beforeRound(ctx context.Context) (stop bool, err error) {
	// A cancel may have come since this run read the batch (while the last
	// round downloaded): a round sent now would be billed for nothing.
	bt, err := b.r.deps.Batches.Get(ctx, b.id())
	if err != nil {
		return false, err
	}
	b.bt.Status = bt.Status
	if b.bt.Status.Terminal() {
		return true, b.abandon(ctx)
	}
	if b.cancelling() {
		return true, b.finish(ctx, b.sweepCancelled)
	}
	spent, err := b.r.deps.Batches.BudgetSpent(ctx, b.bt.Owner)
	if err != nil || !spent {
		return false, err
	}
	b.log.Info().Int("round", b.st.Round).Msg("owner's token budget spent: the provider round does not start")
	return true, b.finish(ctx, b.sweepOverBudget)
}

// advance starts the next round: the items this one deferred, else the
// next stage, else nothing (done).
func (b *run) advance(ctx context.Context) error {
	deferred, err := b.r.deps.Batches.Deferred(ctx, b.id(), b.st.Round)
	if err != nil {
		return err
	}
	prev := b.st
	next := batches.OffloadState{Round: prev.Round + 1, Stage: prev.Stage, Phase: jobs.ProviderUploading}
	switch {
	case len(deferred) > 0:
		next.Fallback = true
		b.deferred = deferred
	case prev.Stage+1 < len(b.stages()):
		next.Stage = prev.Stage + 1
		b.deferred = nil
	default:
		next = prev
		next.Done, next.Phase, next.Chunks = true, jobs.ProviderDone, 0
	}
	if err := b.r.deps.Batches.AdvanceOffload(ctx, b.id(), next, prev.Round, len(b.chunks)); err != nil {
		return err
	}
	if !next.Done {
		b.chunks = nil
		b.r.deps.Metrics.round()
	}
	b.st = next
	if next.Done {
		// The batch's window waits for this phase: it must be written.
		return b.publish(ctx, nil)
	}
	_ = b.publish(ctx, nil) // best effort: the next write corrects it
	return nil
}

// finish ends the provider work: sweep accounts for the items without a
// result, then the state says done.
func (b *run) finish(ctx context.Context, sweep func(context.Context) error) error {
	if err := sweep(ctx); err != nil {
		return err
	}
	b.st.Done, b.st.Phase = true, jobs.ProviderDone
	if err := b.save(ctx); err != nil {
		return err
	}
	// The batch's window waits for this phase: it must be written.
	return b.publish(ctx, nil)
}

// abandon stops the provider batches of a batch that has ended and
// deletes their files. Best effort: what it misses, the provider ends
// within its window.
func (b *run) abandon(ctx context.Context) error {
	p := b.r.deps.Provider
	for k := range b.chunks {
		ch := &b.chunks[k]
		if ch.BatchID != "" && !ended(ch) {
			if _, err := p.CancelBatch(ctx, ch.BatchID); err != nil {
				b.log.Warn().Err(err).Str("provider_batch", ch.BatchID).Msg("cancel the provider batch of an ended batch")
			}
		}
		for _, f := range []string{ch.FileID, ch.OutputFileID, ch.ErrorFileID} {
			if f != "" {
				_ = p.DeleteFile(ctx, f)
			}
		}
	}
	b.st.Done, b.st.Phase = true, jobs.ProviderDone
	err := b.save(ctx)
	if errors.Is(err, batches.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// The last word of a runner that died after its last item ended the
	// batch, before it wrote it (see finish).
	return b.publish(ctx, nil)
}

func (b *run) save(ctx context.Context) error {
	return b.r.deps.Batches.SetOffload(ctx, b.id(), b.st)
}

func (b *run) saveChunk(ctx context.Context, k int) error {
	return b.r.deps.Batches.SetOffloadChunk(ctx, b.id(), b.st.Round, k, b.chunks[k])
}

// fileName names chunk k's file: the provider keeps no metadata on files,
// so the name carries it (and finds it again).
func (b *run) fileName(k int) string {
	return fmt.Sprintf("qaqueue-%s-r%d-s%d-c%d.jsonl", b.id(), b.st.Round, b.st.Stage, k)
}

// metadata tags chunk k's provider batch.
func (b *run) metadata(k int) map[string]string {
	return map[string]string{
		"qaqueue_batch": b.id(), "qaqueue_round": strconv.Itoa(b.st.Round),
		"qaqueue_stage": strconv.Itoa(b.st.Stage), "qaqueue_chunk": strconv.Itoa(k),
	}
}

// finalStatus reports whether a provider batch status is an end.
func finalStatus(s string) bool {
	switch s {
	case "completed", "failed", "expired", "cancelled":
		return true
	}
	return false
}

// ended reports whether chunk ch's provider batch has ended: its status is
// an end, or the provider no longer has it.
func ended(ch *batches.OffloadChunk) bool {
	return ch.Gone != "" || finalStatus(ch.Status)
}

// phaseOf is the round's phase from its provider batches' statuses: the
// least advanced one's.
func phaseOf(chunks []batches.OffloadChunk) jobs.ProviderPhase {
	order := []jobs.ProviderPhase{jobs.ProviderUploading, jobs.ProviderValidating, jobs.ProviderInProgress,
		jobs.ProviderFinalizing, jobs.ProviderDownloading}
	least := len(order) - 1
	for _, ch := range chunks {
		var p int
		switch {
		case ch.BatchID == "":
			p = 0
		case ch.Gone != "":
			p = 4
		case ch.Status == "validating":
			p = 1
		case ch.Status == "in_progress":
			p = 2
		case ch.Status == "finalizing", ch.Status == "cancelling":
			p = 3
		default:
			p = 4
		}
		least = min(least, p)
	}
	return order[least]
}
