package batches

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// Uploads. A batch is stored while its upload is read: items go to Redis in
// chunks as they are decoded, under a record in status validating that no
// read shows (Get and List skip it, and it counts against no quota until it
// is accepted), so an upload is never held whole in memory. Commit makes the
// batch live in one script step; Abort removes it, and if the process dies
// first its keys expire by TTL.

// storeChunkBytes bounds the item bytes sent to Redis in one command, so a
// chunk of long items stays small.
const storeChunkBytes = 1 << 20

// UploadRequest opens an upload.
type UploadRequest struct {
	// Spec is the part of the items' spec the batch holds: its program,
	// options, owner (the batch's) and queue (jobs.QueueBatch when empty);
	// its inputs are not used: each item has its own.
	Spec jobs.Spec
	// TTL is how long the upload's stored items outlive their last write
	// when neither Commit nor Abort comes (the process died): at least the
	// longest the rest of the upload may take to arrive, which only the
	// caller knows (the API: from BATCH_MAX_BYTES and the upload rate it
	// allows). Required.
	TTL time.Duration
	// Mode says how the items reach the LM: jobs.BatchModeLive (also "") or
	// jobs.BatchModeProvider (one offload task instead of item tasks; see
	// Expand).
	Mode jobs.BatchMode
}

// Usage is what an owner's live batches hold, counted against its quotas.
type Usage struct {
	// Items counts the batches' items; Bytes the bytes of their stored
	// inputs (a cancelled batch frees its unstarted items').
	Items, Bytes int64
}

// QuotaError is an upload that would take its owner over a quota
// (BatchConfig.QuotaItems or QuotaBytes).
type QuotaError struct {
	// Resource is "items" or "bytes".
	Resource string
	// Limit is the quota; Used is what the owner's other batches hold.
	Limit, Used int64
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("batch quota exceeded: the owner's batches hold %d %s of %d", e.Used, e.Resource, e.Limit)
}

// Upload is a batch being stored while its upload is read. It is not safe
// for concurrent use.
type Upload struct {
	b       *Store
	req     UploadRequest
	spec    string // the batch record's spec field
	id      string
	created time.Time
	used    Usage // the owner's, when the upload began

	n        int   // items added: the next item's index
	bytes    int64 // their stored bytes
	fields   []any // index, item pairs not sent yet
	pending  int   // bytes in fields
	stored   bool  // the record has been written
	enqueued bool  // its control tasks are in the queue
	live     bool  // committed: Abort must not touch it
}

// BeginUpload opens an upload, the one way to store a batch: Add its items,
// then Commit (or Abort). With a quota set it reads the owner's usage first,
// and refuses (a *QuotaError) an owner already at a quota.
func (b *Store) BeginUpload(ctx context.Context, req UploadRequest) (*Upload, error) {
	if req.TTL <= 0 {
		return nil, fmt.Errorf("begin upload: UploadRequest.TTL must be positive, got %v", req.TTL)
	}
	if req.Spec.Queue == "" {
		req.Spec.Queue = jobs.QueueBatch
	}
	if req.Mode == "" {
		req.Mode = jobs.BatchModeLive
	}
	if !req.Mode.Valid() {
		return nil, fmt.Errorf("begin upload: unknown batch mode %q", req.Mode)
	}
	// The owner is the batch record's own field (its index, its quotas);
	// the inputs are the items'.
	spec := req.Spec
	spec.Owner, spec.Inputs = "", nil
	stored, err := spec.Marshal()
	if err != nil {
		return nil, fmt.Errorf("begin upload: %w", err)
	}
	u := &Upload{b: b, req: req, spec: string(stored), id: jobs.NewBatchID(), created: b.now()}
	if b.cfg.QuotaItems > 0 || b.cfg.QuotaBytes > 0 {
		used, err := b.Usage(ctx, req.Spec.Owner)
		if err != nil {
			return nil, err
		}
		u.used = used
		if err := u.checkQuota(0, 0); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// Usage reads what owner's live batches hold, freeing first the shares of
// batches that have expired.
func (b *Store) Usage(ctx context.Context, owner string) (Usage, error) {
	reply, err := b.run(ctx, "usage", "", owner, "", owner)
	if err != nil {
		return Usage{}, err
	}
	if len(reply) < 2 {
		return Usage{}, fmt.Errorf("read batch usage of %q: short reply", owner)
	}
	items, err1 := strconv.ParseInt(reply[0], 10, 64)
	bytes, err2 := strconv.ParseInt(reply[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Usage{}, fmt.Errorf("read batch usage of %q: %w", owner, err)
	}
	return Usage{Items: items, Bytes: bytes}, nil
}

// checkQuota refuses more items and bytes than the owner's quotas leave.
func (u *Upload) checkQuota(items int, bytes int64) error {
	cfg := u.b.cfg
	if n := int64(u.n + items); cfg.QuotaItems > 0 && u.used.Items+n > cfg.QuotaItems {
		return &QuotaError{Resource: "items", Limit: cfg.QuotaItems, Used: u.used.Items}
	}
	if n := u.bytes + bytes; cfg.QuotaBytes > 0 && u.used.Bytes+n > cfg.QuotaBytes {
		return &QuotaError{Resource: "bytes", Limit: cfg.QuotaBytes, Used: u.used.Bytes}
	}
	return nil
}

// Add appends an item, sending a chunk to Redis when StoreChunk items or
// about a megabyte are waiting. Any error ends the upload: Abort it. A
// *QuotaError means the item would take the owner over a quota.
func (u *Upload) Add(ctx context.Context, item jobs.BatchItem) error {
	v := mustJSON(item)
	if err := u.checkQuota(1, int64(len(v))); err != nil {
		return err
	}
	u.fields = append(u.fields, strconv.Itoa(u.n), v)
	u.n++
	u.bytes += int64(len(v))
	u.pending += len(v)
	if len(u.fields)/2 >= u.b.cfg.StoreChunk || u.pending >= storeChunkBytes {
		return u.flush(ctx)
	}
	return nil
}

// flush sends the waiting items, after the record (status validating) the
// first time, and renews the TTL of both.
func (u *Upload) flush(ctx context.Context) error {
	if len(u.fields) == 0 && u.stored {
		return nil
	}
	b := u.b
	pipe := b.rdb.Pipeline()
	if !u.stored {
		now := u.created.UnixMilli()
		pipe.HSet(ctx, jobs.BatchKey(u.id), "id", u.id, "owner", u.req.Spec.Owner, "status", string(jobs.BatchValidating),
			"total", 0, "completed", 0, "failed", 0, "cancelled", 0, "expanded", 0, "round", 0,
			"spec", u.spec, "mode", string(u.req.Mode), "created_at", now, "updated_at", now,
			"window_ms", ms(b.cfg.CompletionWindow), "expires_at", u.created.Add(b.cfg.CompletionWindow).UnixMilli())
	}
	pipe.PExpire(ctx, jobs.BatchKey(u.id), u.req.TTL)
	if len(u.fields) > 0 {
		pipe.HSet(ctx, jobs.BatchItemsKey(u.id), u.fields...)
		pipe.PExpire(ctx, jobs.BatchItemsKey(u.id), u.req.TTL)
	}
	// Set before the write: a write whose reply is lost may have stored
	// something, which Abort must then remove.
	u.stored = true
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store items of batch %s: %w", u.id, err)
	}
	u.fields, u.pending = u.fields[:0], 0
	return nil
}

// Created is what Commit did.
type Created struct {
	Batch *jobs.Batch
	// Replayed is true when the Idempotency-Key named an existing batch.
	Replayed bool
}

// Commit stores the last items, enqueues the batch's expansion and its
// completion-window check, and makes it live (checking the Idempotency-Key
// and the owner's quotas again, atomically). When it returns without error
// the batch is durable. On error nothing is kept: an *QuotaError, or
// ErrIdempotencyMismatch, or the store's error. A replayed Idempotency-Key
// returns the batch it named, with Replayed set. bodyHash identifies the
// upload (sha256 of its body) for the Idempotency-Key.
func (u *Upload) Commit(ctx context.Context, idempotencyKey, bodyHash string) (*Created, error) {
	b := u.b
	if u.live {
		return nil, errors.New("create batch: upload already committed")
	}
	if u.n == 0 {
		u.abort(ctx, "")
		return nil, errors.New("create batch: no items")
	}
	idemKey := batchIdempotencyKey(u.req.Spec.Owner, idempotencyKey)
	fail := func(err error) (*Created, error) {
		u.abort(ctx, idemKey)
		return nil, err
	}
	if err := u.flush(ctx); err != nil {
		return fail(fmt.Errorf("create batch: %w", err))
	}
	// Its expansion and window check go in before the batch goes live, so a
	// crash between the two leaves an upload still validating, whose keys
	// expire (and the expansion, which waits for it, then ends), never a
	// live batch that nothing expands or ends, holding its owner's quota
	// and a place among the active owners for its whole life.
	u.enqueued = true
	if err := b.enqueueControl(ctx, u.id, u.created); err != nil {
		return fail(fmt.Errorf("create batch: %w", err))
	}
	reply, err := b.run(ctx, "accept", u.id, u.req.Spec.Owner, idemKey, ms(b.pendingTTL()), ms(b.jobStore.Config().IdempotencyTTL),
		bodyHash, u.created.UnixMilli(), u.n, u.bytes, b.cfg.QuotaItems, b.cfg.QuotaBytes)
	if err != nil {
		return fail(fmt.Errorf("create batch: %w", err))
	}
	switch reply[0] {
	case "mismatch":
		return fail(store.ErrIdempotencyMismatch)
	case "duplicate":
		u.abort(ctx, idemKey)
		other, err := b.Get(ctx, reply[1])
		if err != nil {
			return nil, fmt.Errorf("create batch: read replayed batch: %w", err)
		}
		return &Created{Batch: other, Replayed: true}, nil
	case "quota":
		used, _ := strconv.ParseInt(reply[3], 10, 64)
		limit, _ := strconv.ParseInt(reply[2], 10, 64)
		return fail(&QuotaError{Resource: reply[1], Limit: limit, Used: used})
	case "lost":
		// The keys expired before the upload ended (UploadRequest.TTL too
		// short for it).
		return fail(fmt.Errorf("create batch %s: its stored items expired during the upload", u.id))
	}
	u.live = true
	bt, err := b.Get(ctx, u.id)
	if err != nil {
		return nil, fmt.Errorf("create batch: read back: %w", err)
	}
	return &Created{Batch: bt}, nil
}

// batchIdempotencyKey is where an owner's Idempotency-Key of an upload
// names its batch ("" for no key).
func batchIdempotencyKey(owner, key string) string {
	if key == "" {
		return ""
	}
	kh := sha256.Sum256([]byte(key))
	return jobs.IdempotencyKey(owner, "batch:"+hex.EncodeToString(kh[:]))
}

// Replayed is the batch an upload's Idempotency-Key already names.
type Replayed struct {
	BatchID string
	// BodyHash identifies the first upload's body (Commit's bodyHash).
	BodyHash string
}

// Replay returns the live batch that owner's Idempotency-Key names, or nil.
// A repeated upload is answered with that batch (when its body hash
// matches) rather than stored again and counted against the quotas.
func (b *Store) Replay(ctx context.Context, owner, idempotencyKey string) (*Replayed, error) {
	if idempotencyKey == "" {
		return nil, nil
	}
	held, err := b.rdb.Get(ctx, batchIdempotencyKey(owner, idempotencyKey)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read batch idempotency key: %w", err)
	}
	id, hash, _ := strings.Cut(held, " ")
	if n, err := b.rdb.Exists(ctx, jobs.BatchKey(id)).Result(); err != nil || n == 0 {
		return nil, err
	}
	return &Replayed{BatchID: id, BodyHash: hash}, nil
}

// Abort removes whatever the upload stored, when it is refused. After Commit
// it does nothing: a failed Commit has cleaned up already, and a batch that
// went live stays.
func (u *Upload) Abort(ctx context.Context) {
	if !u.live {
		u.abort(ctx, "")
	}
}

// abortTimeout bounds the removal of a refused upload's keys, which runs
// even when the request is over.
const abortTimeout = 2 * time.Second

func (u *Upload) abort(ctx context.Context, idemKey string) {
	u.fields, u.pending, u.live = nil, 0, true
	if !u.stored {
		return
	}
	// The request may be over (a client gone, a read deadline): the keys
	// must still go.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, _ = u.b.run(ctx, "abort", u.id, u.req.Spec.Owner, idemKey)
	if u.enqueued {
		u.b.dropControl(u.id)
	}
}
