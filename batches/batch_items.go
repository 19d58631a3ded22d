package batches

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// ItemOutcome is what StartItem decided.
type ItemOutcome int

// Item start outcomes.
const (
	// ItemStarted: run the item.
	ItemStarted ItemOutcome = iota
	// ItemSkipped: the item has a result already, the batch has ended or is
	// gone, or the item was just counted cancelled or failed; drop the task.
	ItemSkipped
	// ItemOverBudget: the owner's daily token budget is spent; the item was
	// just counted failed, saying so. Drop the task.
	ItemOverBudget
)

// ItemAttempt is one run of a batch item: the handle through which the
// worker records its end.
type ItemAttempt struct {
	b     *Store
	Batch jobs.BatchRef
	// Spec is what the item runs: its batch's part (program, options,
	// owner, queue), its inputs, and Batch.
	Spec jobs.Spec
	// Item is the stored item.
	Item jobs.BatchItem
	// Number counts the item's starts, from 1.
	Number int
	// Last is true when a retryable failure of this attempt fails the item.
	Last bool
	// LMCalls counts this attempt's LM calls, failed ones included. The
	// worker sets it before a put-back (Retry, Defer), which adds it to the
	// item's; Complete takes the count from the result's provenance.
	LMCalls int

	// earlierLMCalls are the LM calls the item's earlier attempts recorded.
	earlierLMCalls int
	// worker runs it; member is its place in the worker's index.
	worker, member string
}

func itemLine(customID string, st jobs.Status, e *jobs.Error, attempts int) string {
	return mustJSON(jobs.ItemResult{CustomID: customID, Status: st, Error: e, Attempts: attempts})
}

// StartItem begins the next attempt of a batch item. It checks, in the same
// script, that the item has no result yet, that the batch is still running
// and within its window (else it ends the batch expired), that a cancelling
// batch's item is counted cancelled instead, that the owner's daily token
// budget is not spent (else it is counted failed, saying so), and that the
// item has attempts left (else it is counted failed: the handler records the
// last attempt, so a batch cannot hang on an item asynq archives).
//
// The item's spec comes from the batch (its part of it) and the item (its
// inputs), read by the same script.
func (b *Store) StartItem(ctx context.Context, p jobs.BatchItemPayload) (*ItemAttempt, ItemOutcome, error) {
	return b.StartItemTask(ctx, p, jobs.BatchItemTaskID(p.Batch, p.Index, p.Round), "")
}

// StartItemTask is StartItem by the asynq task taskID on worker workerID
// ("": none, unindexed): the item joins the worker's index of running items
// (jobs.WorkerItemsKey) until the run ends, and once a recoverer has put
// the item back under a new task, the old task is refused (ItemSkipped).
func (b *Store) StartItemTask(ctx context.Context, p jobs.BatchItemPayload, taskID, workerID string) (*ItemAttempt, ItemOutcome, error) {
	member, err := json.Marshal(p)
	if err != nil {
		return nil, ItemSkipped, fmt.Errorf("start item %d of batch %s: %w", p.Index, p.Batch, err)
	}
	max, budget, now := b.jobStore.Config().MaxAttempts, b.jobStore.Config().TokenBudgetPerDay, b.now()
	cancelled := itemLine(p.CustomID, jobs.StatusCancelled, nil, 0)
	gaveUp := itemLine(p.CustomID, jobs.StatusFailed, &jobs.Error{Code: "attempts_exhausted",
		Message: "gave up after " + strconv.Itoa(max) + " attempts: the last one was lost (worker stopped or timed out)"}, max)
	var overBudget string
	if budget > 0 {
		overBudget = itemLine(p.CustomID, jobs.StatusFailed, jobs.BudgetSpent(budget, now), 0)
	}
	reply, err := b.run(ctx, "start", p.Batch, "", "", p.Index, ms(b.cfg.ProgressInterval), max, cancelled, gaveUp,
		jobs.UsageDay(now), budget, overBudget, workerID, member, taskID)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrEnded):
		return nil, ItemSkipped, nil
	case err != nil:
		return nil, ItemSkipped, err
	}
	if reply[0] == "over_budget" {
		return nil, ItemOverBudget, nil
	}
	if reply[0] != "started" || len(reply) < 6 {
		return nil, ItemSkipped, nil
	}
	n, _ := strconv.Atoi(reply[1])
	item, err := decodeItem(reply[2])
	if err != nil {
		return nil, ItemSkipped, fmt.Errorf("start item %d of batch %s: %w", p.Index, p.Batch, err)
	}
	spec, err := batchSpec(reply[3], reply[4], reply[5])
	if err != nil {
		return nil, ItemSkipped, fmt.Errorf("start item %d of batch %s: %w", p.Index, p.Batch, err)
	}
	ref := jobs.BatchRef{ID: p.Batch, Index: p.Index, CustomID: item.CustomID}
	spec.Inputs, spec.Batch = item.Inputs, &ref
	var earlier int
	if len(reply) > 6 {
		earlier, _ = strconv.Atoi(reply[6])
	}
	return &ItemAttempt{b: b, Batch: ref, Spec: spec, Item: item, Number: n, Last: n >= max, earlierLMCalls: earlier,
		worker: workerID, member: string(member)}, ItemStarted, nil
}

// decodeItem decodes a stored item, numbers as written.
//
// An item release 114e39c stored is {"custom_id", "question"}: read as the
// QA program's inputs. Such items are gone with that release's batches
// (see batchSpec), and this fallback with them.
func decodeItem(v string) (jobs.BatchItem, error) {
	var it struct {
		jobs.BatchItem
		Question *string `json:"question"`
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&it); err != nil {
		return jobs.BatchItem{}, fmt.Errorf("decode item: %w", err)
	}
	if it.Inputs == nil && it.Question != nil {
		it.Inputs = jobs.Inputs{"question": *it.Question}
	}
	return it.BatchItem, nil
}

// finish fills the item's result slot with r (if empty) and counts it;
// tokens (a completed item's) go to the owner's usage of the day (see
// jobs.UsageKey), and res (a completed item's result) to the usage
// accounting's hour (store.Jobs.UsageArgs). It returns the line as
// recorded.
func (a *ItemAttempt) finish(ctx context.Context, r jobs.ItemResult, tokens int64, res *jobs.Result) (json.RawMessage, error) {
	r.CustomID, r.Attempts = a.Item.CustomID, a.Number
	line, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("finish item %d of batch %s: encode its line: %w", a.Batch.Index, a.Batch.ID, err)
	}
	now := a.b.now()
	args := []any{a.Batch.Index, ms(a.b.cfg.ProgressInterval), string(r.Status), line,
		jobs.UsageDay(now), tokens, ms(jobs.UsageTTL), a.worker, a.Number, a.member}
	if res != nil {
		args = append(args, a.b.jobStore.UsageArgs(now, a.Spec.Owner, res)...)
	}
	_, err = a.b.run(ctx, "finish", a.Batch.ID, "", "", args...)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil // deleted meanwhile: nothing to record
	case err != nil:
		return nil, err
	}
	return line, nil
}

// Complete fills the item's result slot (if empty) and counts it, adding
// tokens (what the run used) to the owner's usage of the day and r to the
// usage accounting's hour; the line carries r's cost. r's
// provenance comes with this attempt's LM calls; the line's counts the
// item's attempts and the LM calls of all of them, as a job's result does.
// It returns the line as recorded. ErrEnded means the batch ended first
// (expired).
func (a *ItemAttempt) Complete(ctx context.Context, r *jobs.Result, tokens int64) (json.RawMessage, error) {
	p := r.Provenance.Counted(a.Number, a.earlierLMCalls)
	return a.finish(ctx, jobs.ItemResult{Status: jobs.StatusCompleted, Outputs: r.Outputs, Usage: r.Usage,
		Latency: r.LatencySeconds, CacheHit: r.Provenance.CacheHit, Provenance: &p, Cost: r.Cost}, tokens, r)
}

// Fail records the item failed for reason.
func (a *ItemAttempt) Fail(ctx context.Context, reason *jobs.Error) error {
	_, err := a.finish(ctx, jobs.ItemResult{Status: jobs.StatusFailed, Error: reason}, 0, nil)
	return err
}

// Cancelled records the item cancelled (its batch was cancelled mid-run).
func (a *ItemAttempt) Cancelled(ctx context.Context) error {
	_, err := a.finish(ctx, jobs.ItemResult{Status: jobs.StatusCancelled}, 0, nil)
	return err
}

// Retry records that the item will run again, this attempt counted (its
// start counted it; its task carries the delay): it adds the attempt's LM
// calls to the item's, and ends the run's place in its worker's index.
func (a *ItemAttempt) Retry(ctx context.Context, _ *jobs.Error, _ time.Duration) error {
	_, err := a.b.run(ctx, "lm_calls", a.Batch.ID, "", "", a.Batch.Index, 0, a.LMCalls, a.worker, a.Number, a.member)
	return err
}

// Defer gives the attempt back: the item runs again later (its task carries
// the delay) and this start does not count; its LM calls do. The batch
// keeps no reason.
func (a *ItemAttempt) Defer(ctx context.Context, _ *jobs.Error, _ time.Duration) error {
	_, err := a.b.run(ctx, "defer", a.Batch.ID, "", "", a.Batch.Index, 0, a.LMCalls, a.worker, a.Number, a.member)
	return err
}

// Expand turns the batch's items into tasks on jobs.QueueBatch, from its
// cursor on, recording the cursor after each chunk, so a crash resumes where it
// stopped; deterministic task ids make the overlap harmless (asynq answers
// ErrTaskIDConflict for a task already there). limit > 0 stops after that
// many items (tests use it to simulate a crash). It returns true when every
// item has a task (or the batch no longer needs any: ended, or gone, as an
// upload that never went live is once its keys expire), and
// ErrBatchUploading while the upload is not committed: run it again later.
func (b *Store) Expand(ctx context.Context, id string, limit int) (bool, error) {
	bt, err := b.get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if bt.Mode == jobs.BatchModeProvider {
		return b.expandOffload(ctx, bt)
	}
	done := 0
	for cur := bt.Expanded; cur < bt.Counts.Total; {
		if bt.Status.Terminal() {
			return true, nil
		}
		if bt.Status == jobs.BatchCancelling {
			if _, err := b.run(ctx, "stop_expand", id, bt.Owner, "", cur); err != nil {
				return errors.Is(err, ErrEnded), ignoreEnded(err)
			}
			// The rest never get a task: their inputs go now, with those of
			// any chunk enqueued while Cancel freed the items below the
			// cursor it saw.
			return true, b.freeInputs(ctx, bt, 0, bt.Counts.Total)
		}
		end := min(cur+b.cfg.StoreChunk, bt.Counts.Total)
		if limit > 0 {
			end = min(end, cur+limit-done)
		}
		if err := b.enqueueItems(ctx, bt, cur, end); err != nil {
			return false, err
		}
		if _, err := b.run(ctx, "expanded", id, bt.Owner, "", end); err != nil {
			return errors.Is(err, ErrEnded), ignoreEnded(err)
		}
		done += end - cur
		cur = end
		if limit > 0 && done >= limit {
			return cur >= bt.Counts.Total, nil
		}
		st, err := b.rdb.HGet(ctx, jobs.BatchKey(id), "status").Result()
		if err != nil {
			return false, fmt.Errorf("expand batch %s: %w", id, err)
		}
		bt.Status = jobs.BatchStatus(st)
	}
	return true, nil
}

// The offload task's asynq options. Its handler (the worker's offload
// runner) comes back for each poll of the provider's batches, over a
// provider window of up to 24 hours per stage, and each run may render and
// upload a provider file of hundreds of megabytes.
const (
	offloadMaxRetry = 100_000
	offloadTimeout  = 6 * time.Hour
)

// OffloadTaskID is the id of provider-mode batch id's offload task.
func OffloadTaskID(id string) string { return "offload-" + id }

// expandOffload is Expand of a provider-mode batch: one task
// (jobs.TaskTypeBatchOffload on jobs.QueueBatchProvider) hands every item
// to the worker's offload runner, which sends them to the provider's batch
// API, rather than a task each. The script records every item expanded
// first, so a re-run (the enqueue failed, or its reply was lost) enqueues
// the same task again, which asynq refuses as a duplicate. A batch
// cancelling before that record gets no task: its items are counted
// cancelled and their inputs freed, as a live batch's unexpanded ones.
func (b *Store) expandOffload(ctx context.Context, bt *jobs.Batch) (bool, error) {
	if bt.Status.Terminal() {
		return true, nil
	}
	reply, err := b.run(ctx, "offload", bt.ID, bt.Owner, "")
	if err != nil {
		return errors.Is(err, ErrEnded), ignoreEnded(err)
	}
	if reply[0] != "offload" {
		return true, b.freeInputs(ctx, bt, 0, bt.Counts.Total)
	}
	payload := []byte(mustJSON(jobs.OffloadPayload{BatchID: bt.ID}))
	err = store.Enqueue(ctx, b.aq, asynq.NewTask(jobs.TaskTypeBatchOffload, payload), asynq.Queue(jobs.QueueBatchProvider),
		asynq.TaskID(OffloadTaskID(bt.ID)), asynq.MaxRetry(offloadMaxRetry), asynq.Timeout(offloadTimeout))
	if err != nil {
		return false, fmt.Errorf("expand batch %s: enqueue its offload: %w", bt.ID, err)
	}
	return true, nil
}

func ignoreEnded(err error) error {
	if errors.Is(err, ErrEnded) || errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// enqueueItems enqueues items [from, to) of bt's current round, ExpandParallel
// at a time.
func (b *Store) enqueueItems(ctx context.Context, bt *jobs.Batch, from, to int) error {
	indexes := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		indexes = append(indexes, i)
	}
	return b.enqueueSome(ctx, bt, indexes, false)
}

func (b *Store) enqueueIndexes(ctx context.Context, bt *jobs.Batch, indexes []int, customIDs []string, fallback bool) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range b.cfg.ExpandParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				p := jobs.BatchItemPayload{Batch: bt.ID, Index: indexes[k], Round: bt.Round, CustomID: customIDs[k], Fallback: fallback}
				err := store.Enqueue(ctx, b.aq, asynq.NewTask(jobs.TaskTypeBatchItem, []byte(mustJSON(p))),
					asynq.TaskID(jobs.BatchItemTaskID(bt.ID, indexes[k], bt.Round)), asynq.Queue(jobs.QueueBatch),
					asynq.MaxRetry(b.jobStore.Config().TaskMaxRetry()), asynq.Timeout(b.jobStore.Config().JobTimeout))
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("enqueue item %d of batch %s: %w", indexes[k], bt.ID, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for k := range indexes {
		next <- k
	}
	close(next)
	wg.Wait()
	return first
}

// Retry re-runs the failed items of an ended batch as a new round: their
// slots are emptied, the failed count drops, the batch runs again (a fresh
// completion window) and the items are enqueued with the round in their task
// ids. It returns how many items run again. A failed item whose stored input
// is gone stays failed, its line saying so (input_missing).
func (b *Store) Retry(ctx context.Context, id string) (int, error) {
	bt, err := b.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	if !bt.Status.Terminal() {
		return 0, ErrActive
	}
	var failed []int
	iter := b.rdb.HScan(ctx, jobs.BatchResultsKey(id), 0, "", 1000).Iterator()
	for iter.Next(ctx) {
		field := iter.Val()
		if !iter.Next(ctx) {
			break
		}
		var r jobs.ItemResult
		if json.Unmarshal([]byte(iter.Val()), &r) == nil && r.Status == jobs.StatusFailed &&
			(r.Error == nil || r.Error.Code != inputMissing.Code) {
			n, _ := strconv.Atoi(field)
			failed = append(failed, n)
		}
	}
	if err := iter.Err(); err != nil {
		return 0, fmt.Errorf("retry batch %s: %w", id, err)
	}
	if len(failed) == 0 {
		return 0, ErrNothingToRetry
	}
	round := bt.Round + 1
	// The task that enqueues the round's items goes in first: whatever
	// happens after, the reopened batch gets its items (see Requeue).
	payload := []byte(mustJSON(jobs.BatchTaskPayload{BatchID: id, Round: round}))
	taskID := fmt.Sprintf("requeue-%s-%d", id, round)
	err = store.Enqueue(ctx, b.aq, asynq.NewTask(jobs.TaskTypeBatchRequeue, payload), asynq.Queue(jobs.QueueBatchControl),
		asynq.TaskID(taskID), asynq.MaxRetry(10), asynq.Timeout(time.Hour))
	if err != nil {
		return 0, fmt.Errorf("retry batch %s: enqueue requeue: %w", id, err)
	}
	args := []any{round, mustJSON(inputMissing)}
	for _, n := range failed {
		args = append(args, n)
	}
	reply, err := b.run(ctx, "retry", id, bt.Owner, "", args...)
	if err != nil {
		return 0, err
	}
	if reply[0] == "none" {
		// No round opens: its requeue task goes (best effort: left, it
		// finds the round never opened until asynq gives up on it).
		_ = b.insp.DeleteTask(jobs.QueueBatchControl, taskID)
		return 0, ErrNothingToRetry
	}
	n, _ := strconv.Atoi(reply[1])
	return n, nil
}

// inputMissing is why a failed item stays failed when its batch is retried:
// there is nothing to run (see the retry op in batch.lua).
var inputMissing = &jobs.Error{Code: "input_missing",
	Message: "not run again: its stored input is gone (a cancel of the batch freed it)"}

// errRoundNotOpen: the requeue task ran before POST …/retry reopened the
// batch; asynq runs it again shortly.
var errRoundNotOpen = errors.New("retry round not opened yet")

// Requeue enqueues the items of retry round `round` — those without a
// result — with the round in their task ids, so a repeat is harmless. A
// batch already past that round, or ended again, needs nothing.
func (b *Store) Requeue(ctx context.Context, id string, round int) error {
	bt, err := b.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case bt.Round < round && bt.Status.Terminal():
		return fmt.Errorf("requeue batch %s: %w", id, errRoundNotOpen)
	case bt.Round != round || bt.Status.Terminal():
		return nil
	}
	// The round's window gets its check before the items run, so the batch's
	// end finds it there to delete.
	if err := b.scheduleWindowCheck(ctx, bt); err != nil {
		return err
	}
	done, err := b.rdb.HKeys(ctx, jobs.BatchResultsKey(id)).Result()
	if err != nil {
		return fmt.Errorf("requeue batch %s: %w", id, err)
	}
	finished := make(map[string]bool, len(done))
	for _, k := range done {
		finished[k] = true
	}
	// A provider-mode batch's retry round runs live, as a fallback does:
	// its results say so.
	live := bt.Mode == jobs.BatchModeProvider
	for from := 0; from < bt.Counts.Total; from += b.cfg.StoreChunk {
		to := min(from+b.cfg.StoreChunk, bt.Counts.Total)
		var indexes []int
		for i := from; i < to; i++ {
			if !finished[strconv.Itoa(i)] {
				indexes = append(indexes, i)
			}
		}
		if err := b.enqueueSome(ctx, bt, indexes, live); err != nil {
			return err
		}
	}
	return nil
}

// enqueueSome enqueues the given items of bt's current round. Items without
// a stored input get no task: they are a cancelled batch's items that never
// had one, counted cancelled with an empty slot, which a retry round's
// requeue meets as items without a result. A reopened item always has its
// input: a retry reopens only those, and a cancel keeps them.
func (b *Store) enqueueSome(ctx context.Context, bt *jobs.Batch, indexes []int, fallback bool) error {
	if len(indexes) == 0 {
		return nil
	}
	fields := make([]string, len(indexes))
	for k, i := range indexes {
		fields[k] = strconv.Itoa(i)
	}
	vals, err := b.rdb.HMGet(ctx, jobs.BatchItemsKey(bt.ID), fields...).Result()
	if err != nil {
		return fmt.Errorf("read items of batch %s: %w", bt.ID, err)
	}
	kept := indexes[:0:0]
	customIDs := make([]string, 0, len(vals))
	for k, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var it jobs.BatchItem
		_ = json.Unmarshal([]byte(s), &it)
		kept = append(kept, indexes[k])
		customIDs = append(customIDs, it.CustomID)
	}
	return b.enqueueIndexes(ctx, bt, kept, customIDs, fallback)
}
