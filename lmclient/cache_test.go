package lmclient

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/program"
)

func withMemory(c *Config, _ *Deps) { c.MemoryEnabled = true }

func calls(b *bundle) int64 { return b.srv.RequestsTo("/v1/chat/completions") }

// complete calls and, like the program after a good parse, accepts.
func completeAccept(t *testing.T, c *Client, req *program.Request) *program.Completion {
	t.Helper()
	comp, err := c.Complete(ctxT(t), req)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if err := c.Accept(ctxT(t), req, comp); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	return comp
}

func TestMemoryCacheHit(t *testing.T) {
	t.Parallel()
	b := setup(t, withMemory)
	first := completeAccept(t, b.c, chatRequest("What is a cache?"))
	hit, err := b.c.Complete(ctxT(t), chatRequest("What is a cache?"))
	if err != nil {
		t.Fatal(err)
	}
	if !hit.CacheHit || hit.Text != first.Text || hit.FinishReason != first.FinishReason || len(hit.Usage) != 0 || hit.Usage == nil {
		t.Errorf("hit = %+v, want the cached text, CacheHit and empty usage", hit)
	}
	if calls(b) != 1 {
		t.Errorf("LM calls = %d, want 1", calls(b))
	}
}

func TestAcceptOnlyCaching(t *testing.T) {
	t.Parallel()
	b := setup(t, withMemory)
	req := chatRequest("Is this garbled? [[fakelm:garbage,times=1]]")
	bad, err := b.c.Complete(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	// The program failed to parse it, so it never calls Accept.
	good, err := b.c.Complete(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if good.CacheHit || good.Text == bad.Text || calls(b) != 2 {
		t.Fatalf("a never-accepted answer was served from cache: %+v", good)
	}
}

func TestCacheBypass(t *testing.T) {
	t.Parallel()
	b := setup(t, withMemory)
	req := chatRequest("Bypass me")
	req.NoCache = true
	completeAccept(t, b.c, req) // NoCache: not written either
	req2 := chatRequest("Bypass me")
	if c, _ := b.c.Complete(ctxT(t), req2); c.CacheHit {
		t.Fatal("NoCache request was written to the cache")
	}
	// SkipCacheRead: the LM is called although the answer is cached, and the
	// new answer may be written.
	completeAccept(t, b.c, chatRequest("Bypass me"))
	before := calls(b)
	req3 := chatRequest("Bypass me")
	req3.SkipCacheRead = true
	c3 := completeAccept(t, b.c, req3)
	if c3.CacheHit || calls(b) != before+1 {
		t.Errorf("SkipCacheRead read the cache: %+v", c3)
	}
}

func TestCacheHitStreams(t *testing.T) {
	t.Parallel()
	b := setup(t, withMemory)
	first := completeAccept(t, b.c, chatRequest("Stream the cached answer please"))
	req, deltas := streamed(chatRequest("Stream the cached answer please"))
	hit, err := b.c.Complete(ctxT(t), req)
	if err != nil || !hit.CacheHit {
		t.Fatalf("hit = %+v, %v", hit, err)
	}
	if len(*deltas) < 2 || strings.Join(*deltas, "") != first.Text {
		t.Errorf("replayed %d deltas joining to %q, want the text in a few chunks", len(*deltas), strings.Join(*deltas, ""))
	}
}

func TestStreamAcceptAndTruncated(t *testing.T) {
	t.Parallel()
	b := setup(t, withMemory)
	req, _ := streamed(chatRequest("Cut me off [[fakelm:truncate,after=3,times=1]]"))
	if _, err := b.c.Complete(ctxT(t), req); !Retryable(err) {
		t.Fatalf("truncated stream: %v", err)
	}
	// A completion without a finish reason (not a normal end) is not stored.
	_ = b.c.Accept(ctxT(t), req, &program.Completion{Text: "partial"})
	comp := completeAccept(t, b.c, req)
	hit, _ := b.c.Complete(ctxT(t), chatRequest("Cut me off [[fakelm:truncate,after=3,times=1]]"))
	if !hit.CacheHit || hit.Text != comp.Text {
		t.Errorf("after a normal stream, hit = %+v", hit)
	}
}

func TestDiskCachePersists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := setup(t, func(c *Config, _ *Deps) { c.DiskEnabled, c.Dir, c.MemoryEnabled = true, dir, true })
	first := completeAccept(t, b.c, chatRequest("Will this survive a restart?"))
	_ = b.c.Close()

	// A new process (client) on the same directory.
	cfg := b.cfg
	c2 := newClient(t, cfg, Deps{})
	hit, err := c2.Complete(ctxT(t), chatRequest("Will this survive a restart?"))
	if err != nil || !hit.CacheHit || hit.Text != first.Text {
		t.Fatalf("disk hit = %+v, %v", hit, err)
	}
	// The disk hit was filled into memory.
	key, _ := c2.CacheKey(chatRequest("Will this survive a restart?"))
	if _, ok, _ := c2.cache.layers[0].get(context.Background(), key); !ok {
		t.Error("a disk hit must be copied into memory")
	}
	if calls(b) != 1 {
		t.Errorf("LM calls = %d", calls(b))
	}
}

func TestDiskEviction(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	const limit = 8000
	d, err := openDiskLayer(t.TempDir(), limit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.close() })
	d.touchAfter = 0 // every read counts, so the order below is exact
	text := strings.Repeat("x", 200)
	for i := range 200 {
		if err := d.put(ctx, fmt.Sprintf("k%03d", i), entry{Text: text, FinishReason: "stop"}); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			// Keep k000 recently used: it must outlive its neighbours.
			if _, ok, _ := d.get(ctx, "k000"); !ok {
				t.Fatal("k000 missing early")
			}
		}
		if i%20 == 0 && i > 10 {
			_, _, _ = d.get(ctx, "k000")
		}
	}
	size, err := d.size(ctx)
	if err != nil || size > limit || size <= 0 {
		t.Fatalf("stored bytes = %d, %v; limit %d", size, err, limit)
	}
	var real int64
	_ = d.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0) FROM entries`).Scan(&real)
	if real != size {
		t.Errorf("accounted %d bytes, rows hold %d", size, real)
	}
	if _, ok, _ := d.get(ctx, "k001"); ok {
		t.Error("the oldest entry should have been evicted")
	}
	if _, ok, _ := d.get(ctx, "k199"); !ok {
		t.Error("the newest entry was evicted")
	}
	if _, ok, _ := d.get(ctx, "k000"); !ok {
		t.Error("a recently read entry was evicted before older ones")
	}
}

func TestDiskTwoProcesses(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	dir := t.TempDir()
	a, err := openDiskLayer(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	b, err := openDiskLayer(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	done := make(chan error, 2)
	for w, l := range []*diskLayer{a, b} {
		go func() {
			for i := range 50 {
				if err := l.put(ctx, fmt.Sprintf("w%d-%d", w, i), entry{Text: "t", FinishReason: "stop"}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("concurrent writer: %v", err)
		}
	}
	if _, ok, _ := a.get(ctx, "w1-49"); !ok {
		t.Error("a write of one handle is not visible to the other")
	}
}

func TestRedisCacheShared(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	b := setup(t, withRedis(db), func(c *Config, _ *Deps) { c.RedisEnabled, c.MemoryEnabled = true, true })
	first := completeAccept(t, b.c, chatRequest("Shared across workers?"))

	// Another worker: its own memory, the same Redis.
	c2 := newClient(t, b.cfg, Deps{Redis: db.Client})
	hit, err := c2.Complete(ctxT(t), chatRequest("Shared across workers?"))
	if err != nil || !hit.CacheHit || hit.Text != first.Text {
		t.Fatalf("redis hit = %+v, %v", hit, err)
	}
	key, _ := c2.CacheKey(chatRequest("Shared across workers?"))
	ttl, err := db.Client.PTTL(ctxT(t), c2.CacheStores().RedisPrefix+key).Result()
	if err != nil || ttl <= 0 {
		t.Errorf("redis entry TTL = %s, %v; every entry needs one", ttl, err)
	}
	if _, ok, _ := c2.cache.layers[0].get(context.Background(), key); !ok {
		t.Error("a redis hit must be copied into memory")
	}
	if calls(b) != 1 {
		t.Errorf("LM calls = %d", calls(b))
	}
}

func TestRedisCacheOwnClient(t *testing.T) {
	t.Parallel()
	cacheDB, queueDB := redistest.New(t), redistest.New(t)
	b := setup(t, func(c *Config, d *Deps) {
		c.RedisEnabled = true
		d.Redis, d.CacheRedis = queueDB.Client, cacheDB.Client
	})
	completeAccept(t, b.c, chatRequest("Which Redis?"))
	key, _ := b.c.CacheKey(chatRequest("Which Redis?"))
	if n, _ := cacheDB.Client.Exists(ctxT(t), b.c.CacheStores().RedisPrefix+key).Result(); n != 1 {
		t.Error("entry not in the cache Redis")
	}
	if n, _ := queueDB.Client.Exists(ctxT(t), b.c.CacheStores().RedisPrefix+key).Result(); n != 0 {
		t.Error("entry written to the queue Redis")
	}
}

// AcceptWrite hands the Redis layer's entry to the caller, who writes it
// with its own write on the queue's Redis, and writes the other layers; a
// cache on a Redis of its own is written as Accept writes it.
func TestAcceptWrite(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	db := redistest.New(t)
	b := setup(t, withRedis(db), func(c *Config, _ *Deps) { c.RedisEnabled, c.MemoryEnabled = true, true })
	req := chatRequest("Who writes the entry?")
	comp, err := b.c.Complete(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	w, ok, err := b.c.AcceptWrite(ctx, req, comp)
	if err != nil || !ok {
		t.Fatalf("AcceptWrite = %v, %v; want an entry to write", ok, err)
	}
	key, _ := b.c.CacheKey(req)
	if w.Key != b.c.CacheStores().RedisPrefix+key || w.TTL != b.c.cfg.RedisTTL {
		t.Errorf("entry %s (ttl %s), want %s (ttl %s)", w.Key, w.TTL, b.c.CacheStores().RedisPrefix+key, b.c.cfg.RedisTTL)
	}
	if e, err := decodeEntry(w.Value); err != nil || e.Text != comp.Text || e.FinishReason != comp.FinishReason {
		t.Errorf("entry %s (%v), want the completion's", w.Value, err)
	}
	if n := db.Client.Exists(ctx, w.Key).Val(); n != 0 {
		t.Error("AcceptWrite wrote the Redis entry itself")
	}
	if _, ok, _ := b.c.cache.layers[0].get(ctx, key); !ok {
		t.Error("AcceptWrite left the memory layer unwritten")
	}

	cacheDB, queueDB := redistest.New(t), redistest.New(t)
	own := setup(t, func(c *Config, d *Deps) {
		c.RedisEnabled = true
		d.Redis, d.CacheRedis = queueDB.Client, cacheDB.Client
	})
	comp, err = own.c.Complete(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := own.c.AcceptWrite(ctx, req, comp); ok || err != nil {
		t.Errorf("AcceptWrite with CACHE_REDIS_URL = %v, %v; want it written here", ok, err)
	}
	if n := cacheDB.Client.Exists(ctx, own.c.CacheStores().RedisPrefix+key).Val(); n != 1 {
		t.Error("entry not in the cache Redis")
	}
}
