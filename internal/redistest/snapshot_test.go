package redistest_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// TestSnapshotRoundTrip writes one key of each type (binary values, TTLs,
// stream ids and a last id past the last entry included) to a database,
// dumps it to a file, restores the file into another database and dumps
// that: the two dumps hold the same keys, content and ids, and the restored
// keys expire no later than the originals.
func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := redistest.New(t).Client
	binary := "\x08\x96\x01\xff\x00tail" // not UTF-8, as asynq's protobuf messages
	must(t, src.Set(ctx, "s:plain", "héllo", 0).Err())
	must(t, src.Set(ctx, "s:binary", binary, time.Hour).Err())
	must(t, src.Set(ctx, "s:empty", "", 0).Err())
	must(t, src.HSet(ctx, "h", "status", "queued", "msg", binary, "n", "0").Err())
	must(t, src.PExpire(ctx, "h", 90*time.Minute).Err())
	must(t, src.RPush(ctx, "l", "c", "a", "b", binary).Err())
	must(t, src.SAdd(ctx, "set", "x", "y", binary).Err())
	must(t, src.ZAdd(ctx, "z", redis.Z{Score: 1700000000, Member: "t1"}, redis.Z{Score: -0.5, Member: binary}, redis.Z{Score: 3, Member: "t3"}).Err())
	for _, id := range []string{"9000000000000-0", "9000000000000-1", "9000000000005-0"} {
		must(t, src.XAdd(ctx, &redis.XAddArgs{Stream: "st", ID: id, Values: []any{"type", "token", "data", `{"a":1}`, "type", "dup"}}).Err())
	}
	must(t, src.XAdd(ctx, &redis.XAddArgs{Stream: "st", ID: "9000000000009-0", Values: []any{"type", "gone"}}).Err())
	must(t, src.XDel(ctx, "st", "9000000000009-0").Err()) // the last id stays 9000000000009-0
	must(t, src.XAdd(ctx, &redis.XAddArgs{Stream: "st:empty", ID: "5-5", Values: []any{"k", "v"}}).Err())
	must(t, src.XTrimMaxLen(ctx, "st:empty", 0).Err())

	before, err := redistest.Dump(ctx, src)
	must(t, err)
	before.Source = "TestSnapshotRoundTrip"
	path := filepath.Join(t.TempDir(), "snap.json")
	must(t, redistest.WriteSnapshot(path, before))

	dst := redistest.New(t)
	must(t, dst.Client.Set(ctx, "h", "replaced", 0).Err()) // a key the snapshot names is replaced
	must(t, dst.Client.Set(ctx, "other", "kept", 0).Err())
	restored := redistest.Restore(t, dst, path)
	if restored.Source != "TestSnapshotRoundTrip" || restored.TakenAtMS != before.TakenAtMS {
		t.Errorf("restored header %q %d, want %q %d", restored.Source, restored.TakenAtMS, before.Source, before.TakenAtMS)
	}
	must(t, dst.Client.Del(ctx, "other").Err())
	after, err := redistest.Dump(ctx, dst.Client)
	must(t, err)

	ttls := map[string]int64{}
	for i := range after.Keys {
		k := &after.Keys[i]
		ttls[k.Key] = k.PTTL
		k.PTTL = before.Keys[i].PTTL
	}
	after.Source, after.TakenAtMS = before.Source, before.TakenAtMS
	if d := cmp.Diff(before, after); d != "" {
		t.Fatalf("restored database differs (-dumped +restored):\n%s", d)
	}
	for _, k := range before.Keys {
		got := ttls[k.Key]
		if (k.PTTL == -1) != (got == -1) || got > k.PTTL {
			t.Errorf("%s: pttl %d after restore, %d dumped", k.Key, got, k.PTTL)
		}
	}
	// A new entry follows the stream's last id, not its last entry.
	id, err := dst.Client.XAdd(ctx, &redis.XAddArgs{Stream: "st", Values: []any{"type", "next"}}).Result()
	must(t, err)
	if id != "9000000000009-1" { // ids in the future: XADD * counts on from the last id
		t.Errorf("next stream id %s, want 9000000000009-1", id)
	}

	// The file says what each key holds; binary strings are base64.
	raw, err := redistest.ReadSnapshot(path)
	must(t, err)
	b, _ := json.Marshal(raw.Keys)
	for _, want := range []string{`"key":"s:plain","type":"string","pttl_ms":-1,"string":"héllo"`, `{"base64":"CJYB/wB0YWls"}`,
		`"fields":[["type","token"],["data","{\"a\":1}"],["type","dup"]]`, `"last_id":"9000000000009-0"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("snapshot lacks %s:\n%s", want, b)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
