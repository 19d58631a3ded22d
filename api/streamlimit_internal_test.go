package api

import (
	"context"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// TestStreamLeasesRenew: one renewal pushes every open lease's end forward
// and leaves closed streams' leases alone, so a stream open longer than
// streamLease keeps counting while a crashed process's leases run out.
func TestStreamLeasesRenew(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx := context.Background()
	key := streamLeasesKey("alice")
	for _, id := range []string{"open", "closed"} {
		ok, err := streamLimitScript.Run(ctx, db.Client, []string{key}, "acquire", id, streamLease.Milliseconds(), 10).Bool()
		if err != nil || !ok {
			t.Fatalf("acquire %s: %v %v", id, ok, err)
		}
	}
	// Both leases were taken long ago (their ends are in 1970); only the
	// open stream's is renewed.
	for i, id := range []string{"closed", "open"} {
		if err := db.Client.ZAdd(ctx, key, redis.Z{Score: float64(i + 1), Member: id}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var l streamLeases
	l.add("open", key)
	if err := l.renew(ctx, db.Client, time.Second); err != nil {
		t.Fatal(err)
	}
	now, err := db.Client.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if end, err := db.Client.ZScore(ctx, key, "open").Result(); err != nil || end <= float64(now.UnixMilli()) {
		t.Errorf("open lease ends at %v after renewal (%v), before Redis's now %d", end, err, now.UnixMilli())
	}
	if closed, err := db.Client.ZScore(ctx, key, "closed").Result(); err != nil || closed != 1 {
		t.Errorf("closed lease = %v, %v; want left at 1", closed, err)
	}
	l.remove("open")
	if err := l.renew(ctx, db.Client, time.Second); err != nil {
		t.Errorf("renew with nothing open: %v", err)
	}
}
