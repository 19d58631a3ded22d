package redistest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Snapshots: a Redis database written out key by key as JSON, and read back
// in, so a test can start from a state that other code (a previous release)
// left in Redis. Unlike DUMP/RESTORE's opaque RDB blobs, a snapshot says what
// each key holds, so it can be reviewed and diffed.
//
// The format (SnapshotFormat) is one JSON object:
//
//	{"format": "qaqueue-redis-snapshot/1",
//	 "source": "what wrote it",
//	 "taken_at_ms": server time (Redis TIME, Unix ms) when the dump began,
//	 "keys": [ {"key": name, "type": t, "pttl_ms": n, t: value}, … ]}
//
// sorted by key name. pttl_ms is the key's remaining life when it was dumped
// (Redis PTTL: -1 is no expiry); a restore gives it that long from then on.
// Per type t, the value is
//
//	"string": S
//	"hash":   {field: S, …}            (field names must be valid UTF-8)
//	"list":   [S, …]                   (head first)
//	"set":    [S, …]                   (sorted)
//	"zset":   [{"member": S, "score": n}, …]   (by score; no ±inf)
//	"stream": {"last_id": id, "entries": [{"id": id, "fields": [[S, S], …]}, …]}
//
// where S is a Redis string: a JSON string when it is valid UTF-8, else
// {"base64": "…"} (asynq stores its task messages as protobuf). A stream keeps
// each entry's id and field order, and its last generated id (which the next
// XADD * must exceed); streams with consumer groups are not supported. Key
// names must be valid UTF-8. Other types (modules) are refused.

// SnapshotFormat names the format a Snapshot is written in.
const SnapshotFormat = "qaqueue-redis-snapshot/1"

// Snapshot is a Redis database's keys at one moment.
type Snapshot struct {
	Format string `json:"format"`
	// Source says what wrote the keys (free text).
	Source string `json:"source,omitempty"`
	// TakenAtMS is the server's time when the dump began, in Unix ms.
	TakenAtMS int64         `json:"taken_at_ms"`
	Keys      []SnapshotKey `json:"keys"`
}

// SnapshotKey is one key: its name, type, remaining life and content (the
// field named after its type).
type SnapshotKey struct {
	Key  string `json:"key"`
	Type string `json:"type"`
	// PTTL is the key's remaining life in ms when dumped; -1: no expiry.
	PTTL   int64           `json:"pttl_ms"`
	String *Blob           `json:"string,omitempty"`
	Hash   map[string]Blob `json:"hash,omitempty"`
	List   []Blob          `json:"list,omitempty"`
	Set    []Blob          `json:"set,omitempty"`
	ZSet   []ZMember       `json:"zset,omitempty"`
	Stream *StreamDump     `json:"stream,omitempty"`
}

// ZMember is a sorted set's member with its score.
type ZMember struct {
	Member Blob    `json:"member"`
	Score  float64 `json:"score"`
}

// StreamDump is a stream's entries and its last generated id.
type StreamDump struct {
	LastID  string        `json:"last_id"`
	Entries []StreamEntry `json:"entries"`
}

// StreamEntry is one stream entry: its id and its field/value pairs in order.
type StreamEntry struct {
	ID     string    `json:"id"`
	Fields [][2]Blob `json:"fields"`
}

// Blob is a Redis string in a snapshot: a JSON string when it is valid UTF-8,
// else {"base64": "…"}.
type Blob string

type base64Blob struct {
	Base64 string `json:"base64"`
}

// MarshalJSON writes b as a string, or base64 when it is not valid UTF-8.
func (b Blob) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(b)) {
		return json.Marshal(string(b))
	}
	return json.Marshal(base64Blob{base64.StdEncoding.EncodeToString([]byte(b))})
}

// UnmarshalJSON reads either form MarshalJSON writes.
func (b *Blob) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*b = Blob(s)
		return nil
	}
	var v base64Blob
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("decode snapshot string: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(v.Base64)
	if err != nil {
		return fmt.Errorf("decode snapshot string: %w", err)
	}
	*b = Blob(raw)
	return nil
}

// Dump reads every key of rdb's database. It is not atomic: dump a database
// nothing is writing to.
func Dump(ctx context.Context, rdb redis.UniversalClient) (*Snapshot, error) {
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("dump: read server time: %w", err)
	}
	var names []string
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		names = append(names, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("dump: scan keys: %w", err)
	}
	slices.Sort(names)
	names = slices.Compact(names) // SCAN may return a key twice
	s := &Snapshot{Format: SnapshotFormat, TakenAtMS: now.UnixMilli()}
	for _, name := range names {
		k, err := dumpKey(ctx, rdb, name)
		if err != nil {
			return nil, fmt.Errorf("dump key %q: %w", name, err)
		}
		if k != nil {
			s.Keys = append(s.Keys, *k)
		}
	}
	return s, nil
}

// dumpKey reads one key; nil when it expired meanwhile.
func dumpKey(ctx context.Context, rdb redis.UniversalClient, name string) (*SnapshotKey, error) {
	if !utf8.ValidString(name) {
		return nil, errors.New("key name is not valid UTF-8")
	}
	typ, err := rdb.Type(ctx, name).Result()
	if err != nil {
		return nil, err
	}
	k := &SnapshotKey{Key: name, Type: typ}
	switch typ {
	case "none":
		return nil, nil
	case "string":
		v, err := rdb.Get(ctx, name).Result()
		if err != nil {
			return nil, err
		}
		b := Blob(v)
		k.String = &b
	case "hash":
		h, err := rdb.HGetAll(ctx, name).Result()
		if err != nil {
			return nil, err
		}
		k.Hash = make(map[string]Blob, len(h))
		for f, v := range h {
			if !utf8.ValidString(f) {
				return nil, fmt.Errorf("hash field %q is not valid UTF-8", f)
			}
			k.Hash[f] = Blob(v)
		}
	case "list":
		vs, err := rdb.LRange(ctx, name, 0, -1).Result()
		if err != nil {
			return nil, err
		}
		k.List = blobs(vs)
	case "set":
		vs, err := rdb.SMembers(ctx, name).Result()
		if err != nil {
			return nil, err
		}
		sort.Strings(vs)
		k.Set = blobs(vs)
	case "zset":
		zs, err := rdb.ZRangeWithScores(ctx, name, 0, -1).Result()
		if err != nil {
			return nil, err
		}
		for _, z := range zs {
			if z.Score > 1e308 || z.Score < -1e308 {
				return nil, fmt.Errorf("member %v has an infinite score", z.Member)
			}
			m, _ := z.Member.(string)
			k.ZSet = append(k.ZSet, ZMember{Member: Blob(m), Score: z.Score})
		}
	case "stream":
		if k.Stream, err = dumpStream(ctx, rdb, name); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("type %s is not supported", typ)
	}
	if k.PTTL, err = rdb.Do(ctx, "PTTL", name).Int64(); err != nil {
		return nil, err
	}
	if k.PTTL == -2 {
		return nil, nil // expired while it was read
	}
	return k, nil
}

func blobs(vs []string) []Blob {
	out := make([]Blob, len(vs))
	for i, v := range vs {
		out[i] = Blob(v)
	}
	return out
}

// dumpStream reads a stream's entries with their fields in order (go-redis's
// XRange gives them as a map) and its last generated id.
func dumpStream(ctx context.Context, rdb redis.UniversalClient, name string) (*StreamDump, error) {
	info, err := rdb.XInfoStream(ctx, name).Result()
	if err != nil {
		return nil, err
	}
	if info.Groups > 0 {
		return nil, errors.New("streams with consumer groups are not supported")
	}
	raw, err := rdb.Do(ctx, "XRANGE", name, "-", "+").Slice()
	if err != nil {
		return nil, err
	}
	d := &StreamDump{LastID: info.LastGeneratedID, Entries: make([]StreamEntry, 0, len(raw))}
	for _, r := range raw {
		e, ok := r.([]any)
		if !ok || len(e) != 2 {
			return nil, fmt.Errorf("unexpected XRANGE entry %v", r)
		}
		id, _ := e[0].(string)
		kv, _ := e[1].([]any)
		entry := StreamEntry{ID: id}
		for i := 0; i+1 < len(kv); i += 2 {
			f, _ := kv[i].(string)
			v, _ := kv[i+1].(string)
			entry.Fields = append(entry.Fields, [2]Blob{Blob(f), Blob(v)})
		}
		d.Entries = append(d.Entries, entry)
	}
	return d, nil
}

// WriteSnapshot writes s to path as indented JSON.
func WriteSnapshot(path string, s *Snapshot) error {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot reads a snapshot file.
func ReadSnapshot(path string) (*Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read snapshot %s: %w", path, err)
	}
	if s.Format != SnapshotFormat {
		return nil, fmt.Errorf("read snapshot %s: format %q, want %q", path, s.Format, SnapshotFormat)
	}
	return &s, nil
}

// Load writes every key of s into rdb's database, each in one MULTI: a key
// already there is replaced, other keys are left alone. Each key gets its
// content, its stream ids, and pttl_ms more life from now (a key dumped
// with no life left is skipped).
func Load(ctx context.Context, rdb redis.UniversalClient, s *Snapshot) error {
	for i := range s.Keys {
		k := &s.Keys[i]
		if k.PTTL == 0 || k.PTTL < -1 {
			continue
		}
		if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, k.Key)
			if err := restoreKey(ctx, p, k); err != nil {
				return err
			}
			if k.PTTL > 0 {
				p.PExpire(ctx, k.Key, msDuration(k.PTTL))
			}
			return nil
		}); err != nil {
			return fmt.Errorf("load key %q: %w", k.Key, err)
		}
	}
	return nil
}

// restoreKey queues the commands that rebuild k.
func restoreKey(ctx context.Context, p redis.Pipeliner, k *SnapshotKey) error {
	switch k.Type {
	case "string":
		if k.String == nil {
			return errors.New("string without a value")
		}
		p.Set(ctx, k.Key, string(*k.String), 0)
	case "hash":
		args := make([]any, 0, 2*len(k.Hash))
		for f, v := range k.Hash {
			args = append(args, f, string(v))
		}
		if len(args) == 0 {
			return errors.New("empty hash")
		}
		p.HSet(ctx, k.Key, args...)
	case "list":
		if len(k.List) == 0 {
			return errors.New("empty list")
		}
		p.RPush(ctx, k.Key, anys(k.List)...)
	case "set":
		if len(k.Set) == 0 {
			return errors.New("empty set")
		}
		p.SAdd(ctx, k.Key, anys(k.Set)...)
	case "zset":
		if len(k.ZSet) == 0 {
			return errors.New("empty sorted set")
		}
		zs := make([]redis.Z, len(k.ZSet))
		for i, m := range k.ZSet {
			zs[i] = redis.Z{Score: m.Score, Member: string(m.Member)}
		}
		p.ZAdd(ctx, k.Key, zs...)
	case "stream":
		return restoreStream(ctx, p, k.Key, k.Stream)
	default:
		return fmt.Errorf("type %q is not supported", k.Type)
	}
	return nil
}

func restoreStream(ctx context.Context, p redis.Pipeliner, key string, d *StreamDump) error {
	if d == nil {
		return errors.New("stream without entries")
	}
	if len(d.Entries) == 0 {
		// An empty stream still exists (and remembers its last id): add an
		// entry at that id and trim it away.
		if d.LastID == "" || d.LastID == "0-0" {
			return errors.New("empty stream without a last id")
		}
		p.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: d.LastID, Values: []any{"", ""}})
		p.XTrimMaxLen(ctx, key, 0)
		return nil
	}
	for _, e := range d.Entries {
		if len(e.Fields) == 0 {
			return fmt.Errorf("stream entry %s has no fields", e.ID)
		}
		vals := make([]any, 0, 2*len(e.Fields))
		for _, f := range e.Fields {
			vals = append(vals, string(f[0]), string(f[1]))
		}
		p.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: e.ID, Values: vals})
	}
	if d.LastID != "" && d.LastID != d.Entries[len(d.Entries)-1].ID {
		p.Do(ctx, "XSETID", key, d.LastID)
	}
	return nil
}

func anys(bs []Blob) []any {
	out := make([]any, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// Restore loads the snapshot at path into db (see Load) and returns it. The
// snapshot's times (record fields, asynq's scores) are as they were written:
// a test that depends on the clock reads TakenAtMS.
func Restore(t testing.TB, db *DB, path string) *Snapshot {
	t.Helper()
	s, err := ReadSnapshot(path)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	if err := Load(context.Background(), db.Client, s); err != nil {
		t.Fatalf("redistest: restore %s: %v", path, err)
	}
	return s
}
