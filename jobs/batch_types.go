package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Batch task types and queue. Items run on QueueBatch; the batch's own
// bookkeeping (expanding items into tasks, the completion-window check) runs
// on QueueBatchControl, which the batch server serves first, so a new batch
// never waits behind another's items to be expanded.
const (
	TaskTypeBatchItem   = "qa:batch:item"
	TaskTypeBatchExpand = "qa:batch:expand"
	TaskTypeBatchCheck  = "qa:batch:check"
	// TaskTypeBatchRequeue enqueues a retry round's items: durable, so a
	// crash after POST …/retry reopened the batch cannot strand it.
	TaskTypeBatchRequeue = "qa:batch:requeue"
	QueueBatchControl    = "batch_control"
)

// BatchStatus is where a batch is in its life; the provider batch APIs' names.
type BatchStatus string

// Batch statuses. The last four are terminal. finalizing and failed are the
// provider APIs' and kept so their clients' enums match, but never set here:
// a batch ends in one script step (nothing to finalize), and, as with
// OpenAI's batches, items that fail are counted in request_counts.failed of a
// completed batch rather than failing it; validation errors are answered 422
// before a batch exists.
const (
	BatchValidating BatchStatus = "validating"
	BatchInProgress BatchStatus = "in_progress"
	BatchFinalizing BatchStatus = "finalizing"
	BatchCancelling BatchStatus = "cancelling"
	BatchCompleted  BatchStatus = "completed"
	BatchFailed     BatchStatus = "failed"
	BatchCancelled  BatchStatus = "cancelled"
	BatchExpired    BatchStatus = "expired"
)

// Terminal reports whether a batch in status s has ended.
func (s BatchStatus) Terminal() bool {
	switch s {
	case BatchCompleted, BatchFailed, BatchCancelled, BatchExpired:
		return true
	}
	return false
}

// BatchCounts are a batch's request counts.
type BatchCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
}

// Done is how many items are accounted for.
func (c BatchCounts) Done() int { return c.Completed + c.Failed + c.Cancelled }

// Batch is a batch record as read from Redis.
type Batch struct {
	ID     string
	Owner  string
	Status BatchStatus
	Counts BatchCounts
	// Expanded counts the items that have a task (the expansion's cursor).
	Expanded int
	// Round is 0, then 1, 2 … after each retry of failed items.
	Round int
	// Spec is the part of its items' spec that the batch holds: the
	// program, the options, the owner and the queue (each item's inputs
	// are in its BatchItem).
	Spec         Spec
	CreatedAt    time.Time
	InProgressAt *time.Time
	CancellingAt *time.Time
	CompletedAt  *time.Time
	FailedAt     *time.Time
	CancelledAt  *time.Time
	ExpiredAt    *time.Time
	// ExpiresAt is the end of the completion window.
	ExpiresAt time.Time
	// Mode says how the items reach the LM: live (also a record written
	// before modes) or provider.
	Mode BatchMode
	// Provider is a provider-mode batch's provider object, once its
	// offload runner has written one (nil before, and for a live batch).
	Provider *ProviderProgress
	// Cost is what a provider-mode batch's LM calls have cost so far (nil
	// until its runner writes it).
	Cost *BatchCost
}

// EndedAt is when the batch ended (nil while it runs).
func (b *Batch) EndedAt() *time.Time {
	for _, t := range []*time.Time{b.CompletedAt, b.CancelledAt, b.ExpiredAt, b.FailedAt} {
		if t != nil {
			return t
		}
	}
	return nil
}

// BatchItem is one line of an upload as stored: its custom_id and its
// inputs (the batch holds the rest of its spec).
type BatchItem struct {
	CustomID string `json:"custom_id"`
	Inputs   Inputs `json:"inputs"`
}

// ItemResult is one line of a batch's results, stored as it is served: the
// JSONL of GET /v1/batches/{id}/results.
type ItemResult struct {
	CustomID string `json:"custom_id"`
	// Status is completed, failed or cancelled.
	Status   Status          `json:"status"`
	Outputs  Outputs         `json:"outputs,omitempty"`
	Usage    json.RawMessage `json:"usage,omitempty"`
	Error    *Error          `json:"error,omitempty"`
	Attempts int             `json:"attempts"`
	Latency  float64         `json:"latency_seconds,omitempty"`
	CacheHit bool            `json:"cache_hit,omitempty"`
	// Provenance says how a completed item's answer was produced, as a
	// job's result does (the flat latency_seconds and cache_hit stay).
	Provenance *Provenance `json:"provenance,omitempty"`
	// Cost is a completed item's, as a job's result has it (Result.Cost);
	// absent when unknown.
	Cost *int64 `json:"cost_micro_usd,omitempty"`
}

// BatchProgress is the data of a batch's progress and terminal events.
type BatchProgress struct {
	Status        BatchStatus `json:"status"`
	RequestCounts BatchCounts `json:"request_counts"`
	// Provider is a provider-mode batch's provider object, once set.
	Provider *ProviderProgress `json:"provider,omitempty"`
}

// EventType is the batch's status once it has ended (its terminal event),
// EventProgress before.
func (p BatchProgress) EventType() EventType {
	if p.Status.Terminal() {
		return EventType(p.Status)
	}
	return EventProgress
}

// BatchItemPayload is an item task's payload: which item of which batch, in
// which retry round; not its spec, which the item's start reads from the
// batch. The custom_id is there for the line of an item cancelled before
// its start, whose stored input (and custom_id with it) a cancel may have
// freed.
type BatchItemPayload struct {
	Batch    string `json:"batch"`
	Index    int    `json:"index"`
	Round    int    `json:"round"`
	CustomID string `json:"custom_id"`
	// Fallback marks an item of a provider-mode batch that runs on the
	// live path (the offload runner handed it over, or a retry round runs
	// it): its result's provenance says PathLive.
	Fallback bool `json:"fallback,omitempty"`
}

// ParseBatchItemPayload decodes an item task's payload.
//
// A payload release 114e39c wrote is {"batch": {"id", "index",
// "custom_id"}, "owner", "no_cache"}: read as round 0, the owner and
// no_cache left to the batch, which holds them. Such tasks are gone once
// that release's batches are (BATCH_COMPLETION_WINDOW plus
// BATCH_RESULT_TTL after the upgrade), and this reader can go with them.
func ParseBatchItemPayload(b []byte) (BatchItemPayload, error) {
	var p struct {
		BatchItemPayload
		Batch json.RawMessage `json:"batch"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return BatchItemPayload{}, fmt.Errorf("decode batch item payload: %w", err)
	}
	out := p.BatchItemPayload
	var err error
	if bytes.HasPrefix(p.Batch, []byte("{")) {
		var old BatchRef
		err = json.Unmarshal(p.Batch, &old)
		out = BatchItemPayload{Batch: old.ID, Index: old.Index, CustomID: old.CustomID}
	} else if len(p.Batch) > 0 {
		err = json.Unmarshal(p.Batch, &out.Batch)
	}
	switch {
	case err != nil:
		return out, fmt.Errorf("decode batch item payload: %w", err)
	case out.Batch == "":
		return out, fmt.Errorf("decode batch item payload: missing batch")
	}
	return out, nil
}

// BatchTaskPayload names the batch of an expand or check task.
type BatchTaskPayload struct {
	BatchID string `json:"batch_id"`
	// Round is the retry round a requeue task enqueues.
	Round int `json:"round,omitempty"`
}

// BatchKey is the batch record hash.
func BatchKey(id string) string { return "qa:batch:" + id }

// BatchItemsKey is the hash of stored items, index → BatchItem JSON.
func BatchItemsKey(id string) string { return "qa:batch:" + id + ":items" }

// BatchResultsKey is the hash of result slots, index → ItemResult JSON.
func BatchResultsKey(id string) string { return "qa:batch:" + id + ":results" }

// BatchAttemptsKey counts each item's starts, index → n, and the LM calls of
// its attempts put back, "index:lm_calls" → n.
func BatchAttemptsKey(id string) string { return "qa:batch:" + id + ":attempts" }

// BatchOffloadKey is a provider-mode batch's offload runner's state
// (round, stage, phase, its chunks' provider ids, deferred items, costs).
func BatchOffloadKey(id string) string { return "qa:batch:" + id + ":offload" }

// BatchStagesKey is a provider-mode batch's finished stages, index → the
// item's checkpoints (a JSON list), for a multi-stage program.
func BatchStagesKey(id string) string { return "qa:batch:" + id + ":stages" }

// BatchEventsKey is the batch's capped event stream.
func BatchEventsKey(id string) string { return "qa:batch:" + id + ":events" }

// BatchChannel is the batch's pub/sub channel.
func BatchChannel(id string) string { return "qa:batch:" + id }

// OwnerBatchesKey indexes an owner's batches by creation time.
func OwnerBatchesKey(owner string) string { return "qa:batches:" + owner }

// ActiveOwnersKey holds the owners with running batches (owner → how many).
// It is outside the owners' namespace (qa:batches:{owner}…), which no owner
// name reaches: an API key named "active" once shared this count's key,
// qa:batches:active, as its batch index.
//
// On upgrade from that name, the old key is left alone: it may be the index
// of an owner named "active", whose reads (List) prune the owner names it
// holds as batches that no longer exist. Batches running across the upgrade
// are missing from the new count, and their end decrements a count that
// never held them: below zero, which the script prunes at once (the count
// never stays negative), or, if their owner has newer batches running, to
// one less than it should be. Until those batches end, their owner may be
// counted out, so BATCH_OWNER_SHARE may not hold it back: a fairness rule,
// relaxed for a while, not a limit.
const ActiveOwnersKey = "qa:active_batch_owners"

// BatchItemTaskID is the deterministic task id of an item in a round, so a
// resumed expansion cannot enqueue an item twice.
func BatchItemTaskID(id string, index, round int) string {
	if round == 0 {
		return id + "-" + strconv.Itoa(index)
	}
	return id + "-" + strconv.Itoa(index) + "-r" + strconv.Itoa(round)
}
