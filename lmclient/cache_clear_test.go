package lmclient

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/qaqueue/qaqueue/internal/redistest"
)

// TestStoresLayout: where a client's namespaces live, on disk and in Redis,
// with the default namespace and with a named one.
func TestStoresLayout(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	dir := t.TempDir()
	layers := func(c *Config, d *Deps) {
		c.DiskEnabled, c.Dir, c.RedisEnabled = true, dir, true
		d.Redis = db.Client
	}
	endpoint := setup(t, layers)
	demo := setup(t, layers, func(c *Config, _ *Deps) { c.CacheNamespace = "demo" })
	for _, b := range []*bundle{endpoint, demo} {
		completeAccept(t, b.c, chatRequest("Where am I kept?"))
	}
	ns := EndpointNamespace("openai/gpt-4o-mini", endpoint.srv.URL())
	if got := endpoint.c.CacheStores().Namespace; got != ns || len(ns) != 12 {
		t.Fatalf("namespace = %q, want %q", got, ns)
	}
	key, _ := endpoint.c.CacheKey(chatRequest("Where am I kept?"))
	for _, want := range []string{ns, "demo"} {
		if _, err := os.Stat(filepath.Join(dir, want, "lmcache.sqlite")); err != nil {
			t.Errorf("disk namespace %s: %v", want, err)
		}
		if n, _ := db.Client.Exists(ctxT(t), "qa:lmcache:"+want+":"+key).Result(); n != 1 {
			t.Errorf("redis key qa:lmcache:%s:<key> missing", want)
		}
	}
	if _, err := New(Config{CacheNamespace: "../up", APIBase: endpoint.srv.URL()}, Deps{}); err == nil {
		t.Error("a namespace with a path separator was accepted")
	}
}

// TestClearRedisCache: a namespace's keys go, in SCAN batches, and nothing
// else does: not another namespace's, not the queue's.
func TestClearRedisCache(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx := ctxT(t)
	const many = 2*clearScanCount + 17 // several SCAN and UNLINK rounds
	pipe := db.Client.Pipeline()
	for i := range many {
		pipe.Set(ctx, fmt.Sprintf("qa:lmcache:demo:%064d", i), "{}", 0)
	}
	pipe.Set(ctx, "qa:lmcache:0123456789ab:k", "{}", 0)
	pipe.Set(ctx, "qa:lmcache:"+fmt.Sprintf("%064d", 1), "{}", 0) // before namespaces
	queue := []string{"asynq:{interactive}:pending", "qa:job:0123", "qa:lmcachex", "qa:lmrl:{openai/gpt-4o-mini@demo}"}
	for _, k := range queue {
		pipe.Set(ctx, k, "keep", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := ClearRedisCache(ctx, db.Client, "demo")
	if err != nil || n != many {
		t.Fatalf("clear demo = %d, %v; want %d", n, err, many)
	}
	if left, _ := db.Client.DBSize(ctx).Result(); left != int64(2+len(queue)) {
		t.Errorf("%d keys left, want the other namespace's, the old one and the queue's", left)
	}
	if n, err := ClearRedisCache(ctx, db.Client, ""); err != nil || n != 2 {
		t.Fatalf("clear all = %d, %v; want 2", n, err)
	}
	for _, k := range queue {
		if v, _ := db.Client.Get(ctx, k).Result(); v != "keep" {
			t.Errorf("%s was touched", k)
		}
	}
	if _, err := ClearRedisCache(ctx, db.Client, "*"); err == nil {
		t.Error("a glob namespace was accepted")
	}
}

// TestClearDiskCache: a namespace's database goes, then every one's, and
// nothing else under the directory.
func TestClearDiskCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, ns := range []string{"demo", "0123456789ab", ""} {
		d, err := openDiskLayer(filepath.Join(dir, ns), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.put(ctxT(t), "k", entry{Text: "t", FinishReason: "stop"}); err != nil {
			t.Fatal(err)
		}
		_ = d.close()
	}
	keep := []string{filepath.Join(dir, "notes.txt"), filepath.Join(dir, "0123456789ab", "mine.txt")}
	for _, f := range keep {
		if err := os.WriteFile(f, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names := func() []string {
		list, err := DiskNamespaces(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range list {
			out = append(out, d.Name)
			if d.Bytes <= 0 {
				t.Errorf("namespace %q: %d bytes", d.Name, d.Bytes)
			}
		}
		return out
	}
	if got := names(); !slices.Equal(got, []string{"", "0123456789ab", "demo"}) {
		t.Fatalf("namespaces = %q", got)
	}
	if gone, err := ClearDiskCache(dir, "demo"); err != nil || len(gone) != 1 || gone[0].Name != "demo" {
		t.Fatalf("clear demo = %v, %v", gone, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "demo")); !os.IsNotExist(err) {
		t.Errorf("the emptied demo directory stayed: %v", err)
	}
	if got := names(); !slices.Equal(got, []string{"", "0123456789ab"}) {
		t.Fatalf("after clearing demo: %q", got)
	}
	if gone, err := ClearDiskCache(dir, ""); err != nil || len(gone) != 2 {
		t.Fatalf("clear all = %v, %v", gone, err)
	}
	if got := names(); len(got) != 0 {
		t.Errorf("after clearing all: %q", got)
	}
	for _, f := range keep {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := ClearDiskCache(dir, ".."); err == nil {
		t.Error("namespace .. was accepted")
	}
}
