package offload

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/pricing"
	"github.com/qaqueue/qaqueue/programrun"
)

// result is item x's result once its last stage (last) has finished: the
// program's outputs over every stage, as the live path assembles them.
//
// Its cost is its stages' as each round priced it (a provider's answer at
// the batch prices, live fallbacks at the live ones): unknown when one
// stage's is.
func (b *run) result(x item, last *programrun.Stage, path string) (*jobs.Result, int64, error) {
	runs := make([]*programrun.Stage, 0, len(x.done)+1)
	calls := last.Checkpoint.LMCalls
	cost := last.Checkpoint.Cost
	for _, cp := range x.done {
		st, err := programrun.Resumed(cp)
		if err != nil {
			return nil, 0, err
		}
		runs = append(runs, st)
		calls += cp.LMCalls
		cost = pricing.Add(cost, cp.Cost)
	}
	runs = append(runs, last)
	res, err := programrun.Assemble(b.c, runs, b.multi())
	if err != nil {
		return nil, 0, err
	}
	r := &jobs.Result{
		Outputs: res.Outputs,
		Provenance: jobs.Provenance{
			Model: b.r.deps.LM.Model(), StateSHA256: res.StateSHA256, CacheHit: res.CacheHit, LMCalls: calls,
			Program: programrun.ProgramName(b.bt.Spec.Program), ProgramVersion: b.bt.Spec.ProgramVersion, Path: path,
		},
		Usage:  res.Usage,
		Stages: res.Stages,
		Cost:   cost,
	}
	if byModel, err := pricing.ParseUsage(res.Usage); err == nil {
		r.Tokens = pricing.Tokens(byModel)
	}
	if b.r.cfg.DisableUsage {
		r.Usage = json.RawMessage("null")
	}
	return r, res.Tokens, nil
}

// sweepCancelled counts every item without a result cancelled (the batch
// is being cancelled): each one's start does, as its item task's would.
func (b *run) sweepCancelled(ctx context.Context) error {
	return b.sweep(ctx, func(a *batches.ItemAttempt) error { return a.Cancelled(ctx) })
}

// sweepOverBudget fails every item without a result: its owner's token
// budget is spent (each one's start counts it failed, saying so). An item
// that starts all the same (the day turned) is given back and the sweep
// ends in errBudgetBack: run again, the round starts.
func (b *run) sweepOverBudget(ctx context.Context) error {
	back := false
	err := b.sweep(ctx, func(a *batches.ItemAttempt) error {
		back = true
		return a.Defer(ctx, nil, 0)
	})
	if err == nil && back {
		err = errBudgetBack
	}
	return err
}

var errBudgetBack = errors.New("the owner's token budget is no longer spent")

// sweep starts every item without a result; the start counts what it
// decides, and started (the batch moved on meanwhile) ends it with end.
func (b *run) sweep(ctx context.Context, end func(*batches.ItemAttempt) error) error {
	bs := b.r.deps.Batches
	for lo := 0; lo < b.bt.Counts.Total; lo += pageSize {
		hi := min(lo+pageSize, b.bt.Counts.Total)
		results, its, err := b.page(ctx, lo, hi)
		if err != nil {
			return err
		}
		for i, r := range results {
			if r != "" {
				continue
			}
			p := jobs.BatchItemPayload{Batch: b.id(), Index: lo + i, Round: b.bt.Round}
			if its[i] != nil {
				p.CustomID = its[i].CustomID
			}
			a, out, err := bs.StartItemTask(ctx, p, batches.OffloadTaskID(b.id()), "")
			if err != nil {
				return err
			}
			if out == batches.ItemStarted {
				if err := end(a); err != nil && !errors.Is(err, batches.ErrEnded) {
					return err
				}
			}
		}
	}
	return nil
}

// publish writes the batch's provider object (its progress events carry
// it). Only the last one matters: the batch's window waits for its phase
// done (see finish), and any other the next write corrects, so a failed
// one is logged and returned for the caller to decide.
func (b *run) publish(ctx context.Context, perr *jobs.Error) error {
	p := jobs.ProviderProgress{Name: b.r.cfg.Name, Phase: b.st.Phase, Round: b.st.Round, Error: perr}
	if b.multi() {
		p.Stage = b.stages()[b.st.Stage].Key
	}
	p.Counts.Cached = b.st.Cached
	for k, ch := range b.chunks {
		if p.Error == nil && ch.Gone != "" {
			p.Error = &jobs.Error{Code: "provider_gone", Message: ch.Gone}
		}
		p.Batches = append(p.Batches, jobs.ProviderBatch{Chunk: k, ID: ch.BatchID, InputFileID: ch.FileID,
			OutputFileID: ch.OutputFileID, ErrorFileID: ch.ErrorFileID, Status: ch.Status, Requests: ch.Requests})
		p.Counts.Total += ch.Requests
		p.Counts.Completed += ch.Completed
		p.Counts.Failed += ch.Failed
	}
	err := b.r.deps.Batches.SetProvider(ctx, b.id(), p)
	if err != nil && !errors.Is(err, batches.ErrNotFound) {
		b.log.Debug().Err(err).Msg("write the provider object")
		return err
	}
	return nil
}

// progressError shows a provider error that delays the round.
func (b *run) progressError(ctx context.Context, err error) {
	_ = b.publish(ctx, &jobs.Error{Code: "provider_unavailable", Message: err.Error()})
}

// publishCost writes the batch's cost so far: the sum of its items'
// recorded costs, so a repeat counts nothing twice.
func (b *run) publishCost(ctx context.Context) error {
	sum, err := b.r.deps.Batches.OffloadCost(ctx, b.id())
	if err != nil {
		return err
	}
	c := jobs.BatchCost{Model: b.r.deps.LM.Model(), ProviderCalls: sum.ProviderCalls, LiveCalls: sum.LiveCalls}
	if !sum.Unknown {
		c.Micros, c.LiveMicros = &sum.Micros, &sum.LiveMicros
	}
	return b.r.deps.Batches.SetCost(ctx, b.id(), c)
}
