package batches

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

//go:embed batch.lua
var batchLua string

// Batch errors; callers branch on them with errors.Is.
var (
	// ErrNotFound: no such batch (never existed, expired, or deleted).
	ErrNotFound = errors.New("batch not found")
	// ErrEnded: the batch has already ended; the change was refused.
	ErrEnded = errors.New("batch has already ended")
	// ErrActive: the batch has not ended (delete, retry).
	ErrActive = errors.New("batch has not ended")
	// ErrStale: the item's run is no longer current (its worker was lost
	// and the item put back, or a newer attempt runs it); the write was
	// refused.
	ErrStale = errors.New("batch item run is no longer current")
	// ErrUploading: the batch's upload is not committed yet (status
	// validating). Only its expansion meets it, enqueued before the commit:
	// it should wait.
	ErrUploading = errors.New("batch upload not committed yet")
	// ErrNothingToRetry: the batch has no failed items that can run again
	// (see Retry).
	ErrNothingToRetry = errors.New("batch has no failed items")
)

// Config configures batches. The zero value of each field means its
// default; a field set by a variable takes that variable's default from
// package config. The API and the workers must agree on it.
type Config struct {
	// ResultTTL is how long a batch and its results live after it ends
	// (BATCH_RESULT_TTL). Default [config.DefaultBatchResultTTL].
	ResultTTL time.Duration
	// CompletionWindow is how long a batch may run before it ends expired,
	// keeping what finished (BATCH_COMPLETION_WINDOW). Whole seconds;
	// default [config.DefaultBatchCompletionWindow].
	CompletionWindow time.Duration
	// ProgressInterval is the least time between two progress events of a
	// batch. Default 500ms.
	ProgressInterval time.Duration
	// StoreChunk is how many items go to Redis per command when a batch is
	// stored, and per read when it is expanded. Default 1000.
	StoreChunk int
	// ExpandParallel is how many enqueues an expansion runs at once.
	// Default 16.
	ExpandParallel int
	// QuotaItems and QuotaBytes cap what one owner's live batches hold: their
	// items, and the bytes of their stored inputs (BATCH_QUOTA_ITEMS_PER_KEY,
	// BATCH_QUOTA_BYTES_PER_KEY). An upload over either is refused with a
	// *QuotaError. Defaults [config.DefaultBatchQuotaItemsPerKey] and
	// [config.DefaultBatchQuotaBytesPerKey]; negative: no quota (a variable's
	// 0).
	QuotaItems, QuotaBytes int64
}

// WithDefaults returns c with each zero field set to its default.
func (c Config) WithDefaults() Config {
	c.ResultTTL = cmp.Or(c.ResultTTL, config.DefaultBatchResultTTL)
	c.CompletionWindow = cmp.Or(c.CompletionWindow, config.DefaultBatchCompletionWindow)
	c.ProgressInterval = cmp.Or(c.ProgressInterval, 500*time.Millisecond)
	c.StoreChunk = cmp.Or(c.StoreChunk, 1000)
	c.ExpandParallel = cmp.Or(c.ExpandParallel, 16)
	c.QuotaItems = cmp.Or(c.QuotaItems, config.DefaultBatchQuotaItemsPerKey)
	c.QuotaBytes = cmp.Or(c.QuotaBytes, int64(config.DefaultBatchQuotaBytesPerKey))
	return c
}

// validate checks a Config with its defaults filled in.
func (c Config) validate() error {
	var errs []error
	if c.ResultTTL < time.Millisecond {
		errs = append(errs, fmt.Errorf("ResultTTL must be at least 1ms, got %v", c.ResultTTL))
	}
	if c.CompletionWindow < time.Second || c.CompletionWindow%time.Second != 0 {
		errs = append(errs, fmt.Errorf("CompletionWindow must be a positive whole number of seconds, got %v", c.CompletionWindow))
	}
	if c.ProgressInterval < 0 || c.StoreChunk < 1 || c.ExpandParallel < 1 {
		errs = append(errs, errors.New("ProgressInterval must not be negative; StoreChunk and ExpandParallel must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("batch config: %w", err)
	}
	return nil
}

// Store stores batches and runs their operations: the API side (create,
// read, cancel, retry, delete) and the worker side (expand, item start and
// finish). It is safe for concurrent use.
type Store struct {
	jobStore *store.Jobs
	rdb      redis.UniversalClient
	cfg      Config
	script   *redis.Script
	aq       *asynq.Client
	insp     *asynq.Inspector
	now      func() time.Time
}

// NewStore returns the batch operations on jobStore's Redis.
func NewStore(jobStore *store.Jobs, cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rdb := jobStore.Redis()
	return &Store{jobStore: jobStore, rdb: rdb, cfg: cfg, script: store.NewScript(batchLua),
		aq: asynq.NewClientFromRedisClient(rdb), insp: asynq.NewInspectorFromRedisClient(rdb), now: time.Now}, nil
}

// Config returns the effective configuration, defaults filled in.
func (b *Store) Config() Config { return b.cfg }

// pendingTTL bounds a running batch's keys: its window, then its results' life.
func (b *Store) pendingTTL() time.Duration { return b.cfg.CompletionWindow + b.cfg.ResultTTL }

// run executes one op of the batch script.
func (b *Store) run(ctx context.Context, op, id, owner, idemKey string, args ...any) ([]string, error) {
	keys := []string{jobs.BatchKey(id), jobs.BatchItemsKey(id), jobs.BatchResultsKey(id), jobs.BatchAttemptsKey(id),
		jobs.BatchEventsKey(id), jobs.OwnerBatchesKey(owner), idemKey, jobs.ActiveOwnersKey}
	argv := append([]any{op, b.now().UnixMilli(), jobs.BatchChannel(id), b.jobStore.Config().StreamCap, id, ms(b.cfg.ResultTTL)}, args...)
	reply, err := b.script.Run(ctx, b.rdb, keys, argv...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("%s batch %s: %w", op, id, err)
	}
	if len(reply) == 0 {
		return nil, fmt.Errorf("%s batch %s: empty reply", op, id)
	}
	switch reply[0] {
	case "missing":
		return reply, ErrNotFound
	case "terminal":
		return reply, ErrEnded
	case "active":
		return reply, ErrActive
	case "stale":
		return reply, ErrStale
	}
	if endedBy(op, reply) {
		b.dropWindowCheck(ctx, id)
	}
	return reply, nil
}

// endedBy reports whether the reply to op says that this run ended the
// batch. Item starts answer the item's outcome first, the batch's second.
func endedBy(op string, reply []string) bool {
	if op == "start" {
		return reply[0] == string(jobs.BatchExpired) || (len(reply) > 1 && jobs.BatchStatus(reply[1]).Terminal())
	}
	return jobs.BatchStatus(reply[0]).Terminal()
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own plain structs are marshalled here.
		panic(fmt.Sprintf("batches: marshal %T: %v", v, err))
	}
	return string(b)
}

// msTime reads a time the script stored in unix milliseconds.
func msTime(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// checkTaskIDs are the ids a batch's pending window check may have: the
// first one's, and a rescheduled one's (after a retry), named by the window's
// end.
func checkTaskIDs(id string, expiresAtMs string) []string {
	return []string{"check-" + id, "check-" + id + "-" + expiresAtMs}
}

// dropWindowCheck deletes an ended batch's window check, scheduled at the
// window's end, so it does not linger on the dashboard for a day. Best
// effort: a check left behind finds the batch ended and does nothing.
func (b *Store) dropWindowCheck(ctx context.Context, id string) {
	at, err := b.rdb.HGet(ctx, jobs.BatchKey(id), "expires_at").Result()
	if err != nil {
		at = ""
	}
	for _, task := range checkTaskIDs(id, at) {
		// asynq's Inspector takes no context; the task is small and local.
		_ = b.insp.DeleteTask(jobs.QueueBatchControl, task)
	}
}

// enqueueControl enqueues the batch's window check at the window's end and
// its expansion now: in that order, so a batch that ends at once finds its
// check there to delete. Commit calls it before the batch goes live; the
// expansion waits for that (ErrBatchUploading). Deterministic task ids make
// a repeat harmless.
func (b *Store) enqueueControl(ctx context.Context, id string, now time.Time) error {
	payload := []byte(mustJSON(jobs.BatchTaskPayload{BatchID: id}))
	opts := []asynq.Option{asynq.Queue(jobs.QueueBatchControl), asynq.MaxRetry(25), asynq.Timeout(time.Hour)}
	if err := store.Enqueue(ctx, b.aq, asynq.NewTask(jobs.TaskTypeBatchCheck, payload),
		append(opts, asynq.TaskID(checkTaskIDs(id, "")[0]), asynq.ProcessAt(now.Add(b.cfg.CompletionWindow)))...); err != nil {
		return fmt.Errorf("enqueue window check: %w", err)
	}
	if err := store.Enqueue(ctx, b.aq, asynq.NewTask(jobs.TaskTypeBatchExpand, payload), append(opts, asynq.TaskID(expandTaskID(id)))...); err != nil {
		return fmt.Errorf("enqueue expansion: %w", err)
	}
	return nil
}

func expandTaskID(id string) string { return "expand-" + id }

// dropControl deletes the control tasks of an upload that did not go live.
// Best effort: left behind, they find no batch and end.
func (b *Store) dropControl(id string) {
	// asynq's Inspector takes no context; the tasks are small and local.
	for _, task := range append(checkTaskIDs(id, ""), expandTaskID(id)) {
		_ = b.insp.DeleteTask(jobs.QueueBatchControl, task)
	}
}

// scheduleWindowCheck enqueues a check at the end of bt's current window
// (a retry opened a new one).
func (b *Store) scheduleWindowCheck(ctx context.Context, bt *jobs.Batch) error {
	payload := []byte(mustJSON(jobs.BatchTaskPayload{BatchID: bt.ID}))
	at := bt.ExpiresAt
	err := store.Enqueue(ctx, b.aq, asynq.NewTask(jobs.TaskTypeBatchCheck, payload), asynq.Queue(jobs.QueueBatchControl),
		asynq.TaskID(checkTaskIDs(bt.ID, strconv.FormatInt(at.UnixMilli(), 10))[1]), asynq.ProcessAt(at))
	if err != nil {
		return fmt.Errorf("schedule window check of batch %s: %w", bt.ID, err)
	}
	return nil
}

// Get reads a batch record.
func (b *Store) Get(ctx context.Context, id string) (*jobs.Batch, error) {
	bt, err := b.get(ctx, id)
	if errors.Is(err, ErrUploading) {
		// An upload in progress: the batch does not exist until it is
		// accepted.
		return nil, ErrNotFound
	}
	return bt, err
}

// get reads a batch record; ErrBatchUploading while it is validating.
func (b *Store) get(ctx context.Context, id string) (*jobs.Batch, error) {
	h, err := b.rdb.HGetAll(ctx, jobs.BatchKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("read batch %s: %w", id, err)
	}
	switch h["status"] {
	case "":
		return nil, ErrNotFound
	case string(jobs.BatchValidating):
		return nil, fmt.Errorf("batch %s: %w", id, ErrUploading)
	}
	return decodeBatch(h)
}

func decodeBatch(h map[string]string) (*jobs.Batch, error) {
	spec, err := batchSpec(h["owner"], h["spec"], h["no_cache"])
	if err != nil {
		return nil, fmt.Errorf("decode batch %s: %w", h["id"], err)
	}
	mode := jobs.BatchMode(cmp.Or(h["mode"], string(jobs.BatchModeLive)))
	var (
		provider *jobs.ProviderProgress
		cost     *jobs.BatchCost
	)
	if err := decodeField(h["provider"], &provider); err != nil {
		return nil, fmt.Errorf("decode batch %s: provider: %w", h["id"], err)
	}
	if err := decodeField(h["cost"], &cost); err != nil {
		return nil, fmt.Errorf("decode batch %s: cost: %w", h["id"], err)
	}
	num := func(k string) int { n, _ := strconv.Atoi(h[k]); return n }
	at := func(k string) *time.Time {
		if t := msTime(h[k]); !t.IsZero() {
			return &t
		}
		return nil
	}
	return &jobs.Batch{
		ID: h["id"], Owner: h["owner"], Status: jobs.BatchStatus(h["status"]),
		Counts:   jobs.BatchCounts{Total: num("total"), Completed: num("completed"), Failed: num("failed"), Cancelled: num("cancelled")},
		Expanded: num("expanded"), Round: num("round"), Spec: spec,
		CreatedAt: msTime(h["created_at"]), InProgressAt: at("in_progress_at"), CancellingAt: at("cancelling_at"),
		CompletedAt: at("completed_at"), FailedAt: at("failed_at"), CancelledAt: at("cancelled_at"),
		ExpiredAt: at("expired_at"), ExpiresAt: msTime(h["expires_at"]),
		Mode: mode, Provider: provider, Cost: cost,
	}, nil
}

// decodeField decodes a record's JSON field v into *dst, a pointer left nil
// when the field is not set.
func decodeField[T any](v string, dst **T) error {
	if v == "" {
		return nil
	}
	*dst = new(T)
	return json.Unmarshal([]byte(v), *dst)
}

// batchSpec is the batch-wide part of a batch's items' spec, from the batch
// record's owner and spec fields.
//
// A batch release 114e39c accepted holds no spec, but no_cache ("1" or
// "0"): its items asked the QA program. Such batches are gone
// BATCH_COMPLETION_WINDOW plus BATCH_RESULT_TTL after the upgrade (longer
// if retried), and this fallback with them.
func batchSpec(owner, spec, noCache string) (jobs.Spec, error) {
	s := jobs.Spec{ClientSpec: jobs.ClientSpec{Program: jobs.ProgramQA, Options: jobs.Options{NoCache: noCache == "1"}},
		ServerSpec: jobs.ServerSpec{Queue: jobs.QueueBatch}}
	if spec != "" {
		var err error
		if s, err = jobs.ParseSpec([]byte(spec)); err != nil {
			return s, err
		}
	}
	s.Owner = owner
	return s, nil
}

// List returns up to limit of owner's batches, newest first, created before
// the batch named by after ("" = from the newest), and whether more follow.
func (b *Store) List(ctx context.Context, owner, after string, limit int) ([]*jobs.Batch, bool, error) {
	max := "+inf"
	if after != "" {
		score, err := b.rdb.ZScore(ctx, jobs.OwnerBatchesKey(owner), after).Result()
		if errors.Is(err, redis.Nil) {
			return nil, false, ErrNotFound
		}
		if err != nil {
			return nil, false, fmt.Errorf("list batches: %w", err)
		}
		max = "(" + strconv.FormatFloat(score, 'f', 0, 64)
	}
	ids, err := b.rdb.ZRevRangeByScore(ctx, jobs.OwnerBatchesKey(owner), &redis.ZRangeBy{Max: max, Min: "-inf", Count: int64(limit + 1)}).Result()
	if err != nil {
		return nil, false, fmt.Errorf("list batches: %w", err)
	}
	more := len(ids) > limit
	if more {
		ids = ids[:limit]
	}
	out := make([]*jobs.Batch, 0, len(ids))
	for _, id := range ids {
		bt, err := b.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			// Expired: drop it from the index.
			b.rdb.ZRem(ctx, jobs.OwnerBatchesKey(owner), id)
			continue
		}
		if err != nil {
			return nil, false, err
		}
		out = append(out, bt)
	}
	return out, more, nil
}

// Cancel marks the batch cancelling and tells the workers running its items;
// items not yet started are revoked as workers reach them, and the batch ends
// cancelled once every item is accounted for. It returns the batch as the
// cancel left it. Freeing the inputs of the items that will not run is
// FreeInputs, the caller's next step: a failure there does not undo the
// cancel.
func (b *Store) Cancel(ctx context.Context, id string) (*jobs.Batch, error) {
	bt, err := b.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, err := b.run(ctx, "cancel", id, bt.Owner, ""); err != nil {
		return nil, err
	}
	return b.Get(ctx, id)
}

// FreeInputs deletes at once the stored inputs of the items of cancelled
// batch bt that have a task but will not run, and their bytes from the
// owner's quota. Best effort: whatever it leaves is freed all the same, each
// item's input by its task's start as the queued tasks drain, and those of
// the items without a task by the expansion as it stops; the batch's TTL
// bounds the rest.
func (b *Store) FreeInputs(ctx context.Context, bt *jobs.Batch) error {
	return b.freeInputs(ctx, bt, 0, bt.Expanded)
}

// freeInputs deletes the stored inputs of a cancelled batch's items in
// [from, to) that will not run, a chunk per script run (see free_inputs in
// batch.lua for which). Results stay.
func (b *Store) freeInputs(ctx context.Context, bt *jobs.Batch, from, to int) error {
	for ; from < to; from += b.cfg.StoreChunk {
		end := min(from+b.cfg.StoreChunk, to)
		if _, err := b.run(ctx, "free_inputs", bt.ID, bt.Owner, "", from, end); err != nil {
			return ignoreEnded(err)
		}
	}
	return nil
}

// SetProvider writes the provider object of provider-mode batch id (its
// offload runner's progress) and appends a progress event that carries it,
// in one script step; the batch's later progress events carry it too. An
// ended batch keeps it without an event. ErrNotFound: no such batch.
func (b *Store) SetProvider(ctx context.Context, id string, p jobs.ProviderProgress) error {
	_, err := b.run(ctx, "provider", id, "", "", mustJSON(p))
	return err
}

// SetCost writes what batch id's LM calls have cost so far, also after its
// end. ErrNotFound: no such batch.
func (b *Store) SetCost(ctx context.Context, id string, c jobs.BatchCost) error {
	_, err := b.run(ctx, "cost", id, "", "", mustJSON(c))
	return err
}

// Expire ends the batch expired if its window has passed (false: not yet).
func (b *Store) Expire(ctx context.Context, id string) (bool, error) {
	reply, err := b.run(ctx, "expire", id, "", "")
	if err != nil {
		return false, err
	}
	return reply[0] == string(jobs.BatchExpired), nil
}

// Delete removes an ended batch, its items, results and events.
func (b *Store) Delete(ctx context.Context, id string) error {
	bt, err := b.Get(ctx, id)
	if err != nil {
		return err
	}
	if _, err = b.run(ctx, "delete", id, bt.Owner, ""); err != nil {
		return err
	}
	for _, task := range checkTaskIDs(id, strconv.FormatInt(bt.ExpiresAt.UnixMilli(), 10)) {
		_ = b.insp.DeleteTask(jobs.QueueBatchControl, task) // see dropWindowCheck
	}
	return nil
}

// Events returns the batch's events after the stream id after.
func (b *Store) Events(ctx context.Context, id, after string) ([]jobs.Event, error) {
	return b.stream(id).Read(ctx, after, 0)
}

func (b *Store) stream(id string) store.Stream {
	return store.Stream{Redis: b.rdb, Key: jobs.BatchEventsKey(id)}
}

// Source is batch id as a follow's source (store.Follow). A batch that is
// gone is store.ErrNotFound there, as a job is.
func (b *Store) Source(id string) store.Source[*jobs.Batch] { return batchSource{b: b, id: id} }

// batchSource follows a batch.
type batchSource struct {
	b  *Store
	id string
}

func (s batchSource) Channel() string          { return jobs.BatchChannel(s.id) }
func (s batchSource) Stream() store.Stream     { return s.b.stream(s.id) }
func (s batchSource) Ended(r *jobs.Batch) bool { return r.Status.Terminal() }
func (s batchSource) Load(ctx context.Context) (*jobs.Batch, error) {
	bt, err := s.b.Get(ctx, s.id)
	if errors.Is(err, ErrNotFound) {
		return nil, store.ErrNotFound
	}
	return bt, err
}

// Results returns the result lines of items [from, to) in index order; an
// item without a result gives "".
func (b *Store) Results(ctx context.Context, id string, from, to int) ([]string, error) {
	if to <= from {
		return nil, nil
	}
	fields := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		fields = append(fields, strconv.Itoa(i))
	}
	vals, err := b.rdb.HMGet(ctx, jobs.BatchResultsKey(id), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read results of batch %s: %w", id, err)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i], _ = v.(string)
	}
	return out, nil
}

// CheckWindow ends the batch expired if its completion window has passed;
// if the window was moved on (a retry), it schedules the next check at the
// new end.
func (b *Store) CheckWindow(ctx context.Context, id string) error {
	expired, err := b.Expire(ctx, id)
	if err != nil || expired {
		return ignoreEnded(err)
	}
	bt, err := b.Get(ctx, id)
	if err != nil {
		return ignoreEnded(err)
	}
	return b.scheduleWindowCheck(ctx, bt)
}

// ActiveOwners counts the owners with running batches.
func (b *Store) ActiveOwners(ctx context.Context) (int64, error) {
	n, err := b.rdb.ZCount(ctx, jobs.ActiveOwnersKey, "(0", "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("count batch owners: %w", err)
	}
	return n, nil
}
