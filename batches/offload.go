package batches

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// A provider-mode batch's offload runner (package offload) keeps its state
// here, in two hashes beside the batch's own keys that live and die with
// it: jobs.BatchOffloadKey (where the runner is, its chunks' provider ids,
// the items deferred to a further round, each item's cost) and
// jobs.BatchStagesKey (each item's finished stages, for a multi-stage
// program). Only one offload task runs a batch at a time (its task id is
// the batch's), so these are plain writes; each gives the key the batch
// record's remaining life, since the batch's accept set its TTLs before
// these keys existed (its end sets theirs with the rest, expire_all).

// OffloadState is where a provider-mode batch's offload runner is.
type OffloadState struct {
	// Round counts provider rounds from 1 (0: none started).
	Round int `json:"round"`
	// Stage is the index of the program stage the round runs.
	Stage int `json:"stage"`
	// Fallback is set for a round that runs only the items the last round
	// deferred (their answers did not parse, PROVIDER_FALLBACK=provider).
	Fallback bool               `json:"fallback,omitempty"`
	Phase    jobs.ProviderPhase `json:"phase"`
	// Planned is set once the round's chunks are recorded.
	Planned bool `json:"planned,omitempty"`
	// Chunks counts the round's chunks.
	Chunks int `json:"chunks"`
	// Cached counts the round's items the LM cache answered while it was
	// planned: never sent.
	Cached int `json:"cached"`
	// Polls counts the round's polls that found it unfinished: the next
	// poll's backoff.
	Polls int `json:"polls"`
	// Cancelled is set once the round's provider batches were told to
	// cancel (the batch is cancelling).
	Cancelled bool `json:"cancelled,omitempty"`
	// Done is set when no provider work is left.
	Done bool `json:"done,omitempty"`
}

// OffloadChunk is one chunk of a round: a range of item indexes sent as
// one provider file and batch.
type OffloadChunk struct {
	// From and To are the item indexes the chunk covers, [From, To): a
	// re-render of the range gives the same lines (or fewer, once items
	// have answers).
	From     int    `json:"from"`
	To       int    `json:"to"`
	Requests int    `json:"requests"`
	Bytes    int64  `json:"bytes"`
	FileID   string `json:"file_id,omitempty"`
	// Creating is set just before the provider batch is created: a runner
	// that finds it set without BatchID looks for the batch first.
	Creating     bool   `json:"creating,omitempty"`
	BatchID      string `json:"batch_id,omitempty"`
	Status       string `json:"status,omitempty"`
	OutputFileID string `json:"output_file_id,omitempty"`
	ErrorFileID  string `json:"error_file_id,omitempty"`
	Completed    int    `json:"completed"`
	Failed       int    `json:"failed"`
	// Gone says which of the chunk's provider batch or files the provider
	// no longer has (a 404: purged, or deleted in its console), and so never
	// answers: the chunk has ended without the answers it held.
	Gone string `json:"gone,omitempty"`
	// Downloaded is set once every line of the chunk's output and error
	// files is recorded; Deleted once its provider files are deleted.
	Downloaded bool `json:"downloaded,omitempty"`
	Deleted    bool `json:"deleted,omitempty"`
}

// ItemCost is what one item cost in a round: its provider answer at the
// batch price, its live calls at the live price.
type ItemCost struct {
	// Micros is what was spent, LiveMicros what the same calls would have
	// cost live (micro-dollars). Unknown is set when the model has no price.
	Micros     int64 `json:"m"`
	LiveMicros int64 `json:"l"`
	Unknown    bool  `json:"u,omitempty"`
	// ProviderCalls and LiveCalls count the calls each way.
	ProviderCalls int `json:"p"`
	LiveCalls     int `json:"c"`
}

// Spent is Micros, nil when Unknown: the item's cost as its result
// records it (jobs.Result.Cost).
func (c ItemCost) Spent() *int64 {
	if c.Unknown {
		return nil
	}
	return &c.Micros
}

// offloadFields of the offload hash.
const (
	stateField    = "state"
	chunkPrefix   = "chunk:"
	deferPrefix   = "defer:"
	costPrefix    = "cost:"
	offloadScript = `
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
for _, f in ipairs(cjson.decode(ARGV[1])) do redis.call('HDEL', KEYS[1], f) end
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return redis.call('EXISTS', KEYS[2])
`
)

// hsetLive sets fields (name, value pairs) of key, a hash of batch id,
// deletes drop, and gives key the batch record's remaining life, in one
// step. A batch that is gone is ErrNotFound (its keys are left to expire).
var hsetLive = redis.NewScript(offloadScript)

func (b *Store) hsetLive(ctx context.Context, key, id string, drop []string, pairs ...string) error {
	if drop == nil {
		drop = []string{}
	}
	argv := []any{mustJSON(drop), ""}
	for _, p := range pairs {
		argv = append(argv, p)
	}
	n, err := hsetLive.Run(ctx, b.rdb, []string{key, jobs.BatchKey(id)}, argv...).Int()
	if err != nil {
		return fmt.Errorf("write offload state of batch %s: %w", id, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Offload reads the runner's state and the current round's chunks, in
// order. A batch never offloaded has the zero state.
func (b *Store) Offload(ctx context.Context, id string) (OffloadState, []OffloadChunk, error) {
	var st OffloadState
	raw, err := b.rdb.HGet(ctx, jobs.BatchOffloadKey(id), stateField).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return st, nil, nil
	case err != nil:
		return st, nil, fmt.Errorf("read offload state of batch %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return st, nil, fmt.Errorf("read offload state of batch %s: %w", id, err)
	}
	chunks := make([]OffloadChunk, st.Chunks)
	if st.Chunks == 0 {
		return st, chunks, nil
	}
	fields := make([]string, st.Chunks)
	for i := range fields {
		fields[i] = chunkField(st.Round, i)
	}
	vals, err := b.rdb.HMGet(ctx, jobs.BatchOffloadKey(id), fields...).Result()
	if err != nil {
		return st, nil, fmt.Errorf("read offload chunks of batch %s: %w", id, err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			return st, nil, fmt.Errorf("read offload chunks of batch %s: chunk %d of round %d is missing", id, i, st.Round)
		}
		if err := json.Unmarshal([]byte(s), &chunks[i]); err != nil {
			return st, nil, fmt.Errorf("read offload chunk %d of batch %s: %w", i, id, err)
		}
	}
	return st, chunks, nil
}

func chunkField(round, n int) string {
	return chunkPrefix + strconv.Itoa(round) + ":" + strconv.Itoa(n)
}

// SetOffload records the runner's state.
func (b *Store) SetOffload(ctx context.Context, id string, st OffloadState) error {
	return b.hsetLive(ctx, jobs.BatchOffloadKey(id), id, nil, stateField, mustJSON(st))
}

// PlanOffloadRound records a round's state with its chunks, in one step:
// a runner killed while planning plans the round again.
func (b *Store) PlanOffloadRound(ctx context.Context, id string, st OffloadState, chunks []OffloadChunk) error {
	st.Chunks, st.Planned = len(chunks), true
	pairs := []string{stateField, mustJSON(st)}
	for i, c := range chunks {
		pairs = append(pairs, chunkField(st.Round, i), mustJSON(c))
	}
	return b.hsetLive(ctx, jobs.BatchOffloadKey(id), id, nil, pairs...)
}

// SetOffloadChunk records chunk n of round round: each provider id the
// moment it is known.
func (b *Store) SetOffloadChunk(ctx context.Context, id string, round, n int, c OffloadChunk) error {
	return b.hsetLive(ctx, jobs.BatchOffloadKey(id), id, nil, chunkField(round, n), mustJSON(c))
}

// AdvanceOffload records the runner's next state and deletes the chunks
// of round round (ended: their provider files deleted, their results
// stored), in one step: a crash between the two would leave a state whose
// chunks are gone.
func (b *Store) AdvanceOffload(ctx context.Context, id string, next OffloadState, round, chunks int) error {
	drop := make([]string, chunks)
	for i := range drop {
		drop[i] = chunkField(round, i)
	}
	return b.hsetLive(ctx, jobs.BatchOffloadKey(id), id, drop, stateField, mustJSON(next))
}

// DeferItem records that item index goes to the round after round at
// attempt (program.RunOptions.FromAttempt).
func (b *Store) DeferItem(ctx context.Context, id string, round, index, attempt int) error {
	return b.hsetLive(ctx, jobs.BatchOffloadKey(id), id, nil, deferField(round, index), strconv.Itoa(attempt))
}

func deferField(round, index int) string {
	return deferPrefix + strconv.Itoa(round) + ":" + strconv.Itoa(index)
}

// Deferred returns the items round deferred to the next: index → attempt.
func (b *Store) Deferred(ctx context.Context, id string, round int) (map[int]int, error) {
	prefix := deferPrefix + strconv.Itoa(round) + ":"
	out := map[int]int{}
	err := b.scanOffload(ctx, id, prefix, func(rest, v string) {
		i, err1 := strconv.Atoi(rest)
		a, err2 := strconv.Atoi(v)
		if err1 == nil && err2 == nil {
			out[i] = a
		}
	})
	return out, err
}

// scanOffload calls fn with each field of the offload hash under prefix
// (the rest of its name) and its value, once each: HSCAN returns a field
// twice when the hash's table shrinks between two of its pages (fields
// deleted meanwhile: Redis rehashes it smaller, and its cursor covers part
// of what it had seen again), which a sum must not count twice.
func (b *Store) scanOffload(ctx context.Context, id, prefix string, fn func(rest, v string)) error {
	seen := map[string]struct{}{}
	iter := b.rdb.HScan(ctx, jobs.BatchOffloadKey(id), 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		field := iter.Val()
		if !iter.Next(ctx) {
			break
		}
		if _, dup := seen[field]; dup {
			continue
		}
		seen[field] = struct{}{}
		if rest, ok := strings.CutPrefix(field, prefix); ok {
			fn(rest, iter.Val())
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("read offload state of batch %s: %w", id, err)
	}
	return nil
}

// SetItemCost records what item index cost in round round. A repeat (the
// same line recorded again after a crash) overwrites it: costs add up once.
func (b *Store) SetItemCost(ctx context.Context, id string, round, index int, c ItemCost) error {
	return b.hsetLive(ctx, jobs.BatchOffloadKey(id), id, nil,
		costPrefix+strconv.Itoa(round)+":"+strconv.Itoa(index), mustJSON(c))
}

// OffloadCost is the sum of the items' costs so far.
func (b *Store) OffloadCost(ctx context.Context, id string) (ItemCost, error) {
	var sum ItemCost
	err := b.scanOffload(ctx, id, costPrefix, func(_, v string) {
		var c ItemCost
		if json.Unmarshal([]byte(v), &c) != nil {
			return
		}
		sum.Micros += c.Micros
		sum.LiveMicros += c.LiveMicros
		sum.Unknown = sum.Unknown || c.Unknown
		sum.ProviderCalls += c.ProviderCalls
		sum.LiveCalls += c.LiveCalls
	})
	return sum, err
}

// SetStages records item index's finished stages (checkpoints, in order).
func (b *Store) SetStages(ctx context.Context, id string, index int, cps []jobs.Checkpoint) error {
	v, err := json.Marshal(cps)
	if err != nil {
		return fmt.Errorf("encode stages of item %d of batch %s: %w", index, id, err)
	}
	return b.hsetLive(ctx, jobs.BatchStagesKey(id), id, nil, strconv.Itoa(index), string(v))
}

// Stages reads the finished stages of items [from, to); an item with none
// has nil.
func (b *Store) Stages(ctx context.Context, id string, from, to int) ([][]jobs.Checkpoint, error) {
	vals, err := b.hmgetRange(ctx, jobs.BatchStagesKey(id), from, to)
	if err != nil {
		return nil, fmt.Errorf("read stages of batch %s: %w", id, err)
	}
	out := make([][]jobs.Checkpoint, len(vals))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if err := json.Unmarshal([]byte(s), &out[i]); err != nil {
			return nil, fmt.Errorf("read stages of item %d of batch %s: %w", from+i, id, err)
		}
	}
	return out, nil
}

// Items reads the stored items [from, to); nil for an item whose input is
// gone (freed by a cancel).
func (b *Store) Items(ctx context.Context, id string, from, to int) ([]*jobs.BatchItem, error) {
	vals, err := b.hmgetRange(ctx, jobs.BatchItemsKey(id), from, to)
	if err != nil {
		return nil, fmt.Errorf("read items of batch %s: %w", id, err)
	}
	out := make([]*jobs.BatchItem, len(vals))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		it, err := decodeItem(s)
		if err != nil {
			return nil, fmt.Errorf("read item %d of batch %s: %w", from+i, id, err)
		}
		out[i] = &it
	}
	return out, nil
}

func (b *Store) hmgetRange(ctx context.Context, key string, from, to int) ([]any, error) {
	if to <= from {
		return nil, nil
	}
	fields := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		fields = append(fields, strconv.Itoa(i))
	}
	return b.rdb.HMGet(ctx, key, fields...).Result()
}

// BudgetSpent reports whether owner's daily token budget is spent (never,
// without one): a provider round does not start then, and its items fail
// at their start saying so.
func (b *Store) BudgetSpent(ctx context.Context, owner string) (bool, error) {
	budget := b.jobStore.Config().TokenBudgetPerDay
	if budget <= 0 {
		return false, nil
	}
	used, err := b.rdb.Get(ctx, jobs.UsageKey(owner, jobs.UsageDay(b.now()))).Int64()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read token usage of %s: %w", owner, err)
	}
	return used >= budget, nil
}

// EnqueueLive hands items of bt to the live path: each gets its item task
// on jobs.QueueBatch, as a live batch's items do (a repeat is harmless:
// the task ids are the items'), marked a fallback so that its result says
// the live path answered it. The offload runner sends there the items a
// provider round left unanswered.
func (b *Store) EnqueueLive(ctx context.Context, bt *jobs.Batch, indexes []int) error {
	return b.enqueueSome(ctx, bt, indexes, true)
}
