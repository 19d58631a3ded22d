package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// allKeys lists a database's keys, sorted.
func allKeys(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	var keys []string
	iter := rdb.Scan(context.Background(), 0, "*", 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// runCacheCmd runs one qa command with vars as its environment.
func runCacheCmd(t *testing.T, vars map[string]string, args ...string) (string, string) {
	t.Helper()
	e, out, errOut := probeEnv(vars)
	if code := run(context.Background(), e, args); code != 0 {
		t.Fatalf("qa %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out.String(), errOut.String()
}

// TestCacheClear: after qa dev has answered a question (so the Redis holds
// jobs, asynq's keys and cache entries), qa cache clear deletes the cache's
// keys and files of one namespace, then of all, and nothing else: every
// queue key survives, and so does a file of someone else's in CACHE_DIR.
func TestCacheClear(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx := context.Background()
	cacheDir := t.TempDir()
	vars := map[string]string{"REDIS_URL": db.URL(), "CACHE_DIR": cacheDir}
	dev := startDev(t, vars)
	dev.ask(t, "What is a namespace?")
	dev.stop()
	other := "qa:lmcache:0123456789ab:" + strings.Repeat("f", 64) // another endpoint's entry
	if err := db.Client.Set(ctx, other, "{}", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cacheDir, "keep.txt"), []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := allKeys(t, db.Client)
	var queueKeys, demoKeys []string
	for _, k := range before {
		switch {
		case strings.HasPrefix(k, "qa:lmcache:demo:"):
			demoKeys = append(demoKeys, k)
		case !strings.HasPrefix(k, "qa:lmcache:"):
			queueKeys = append(queueKeys, k)
		}
	}
	if len(demoKeys) == 0 || !slices.ContainsFunc(queueKeys, func(k string) bool { return strings.HasPrefix(k, "asynq:") }) {
		t.Fatalf("after a qa dev run the Redis holds %q: want demo cache keys and asynq's", before)
	}

	info, _ := runCacheCmd(t, vars, "cache")
	for _, want := range []string{"namespace  demo", filepath.Join(cacheDir, "demo", "lmcache.sqlite"), "keys qa:lmcache:demo:*", "demo (this one)"} {
		if !strings.Contains(info, want) {
			t.Errorf("qa cache lacks %q:\n%s", want, info)
		}
	}

	out, _ := runCacheCmd(t, vars, "cache", "clear") // no key configured: the demo namespace
	if !strings.Contains(out, "disk: removed demo") || !strings.Contains(out, "redis: deleted ") {
		t.Errorf("qa cache clear said:\n%s", out)
	}
	after := allKeys(t, db.Client)
	if want := append(slices.Clone(queueKeys), other); !slices.Equal(after, sortedCopy(want)) {
		t.Fatalf("after clearing demo, keys = %q\nwant the queue's and the other namespace's: %q", after, sortedCopy(want))
	}
	if _, err := os.Stat(filepath.Join(cacheDir, "demo")); !os.IsNotExist(err) {
		t.Errorf("the demo namespace directory is still there: %v", err)
	}

	runCacheCmd(t, vars, "cache", "clear", "--all", "--layer", "redis")
	if after := allKeys(t, db.Client); !slices.Equal(after, queueKeys) {
		t.Fatalf("after clearing all, keys = %q\nwant exactly the queue's: %q", after, queueKeys)
	}
	if _, err := os.Stat(filepath.Join(cacheDir, "keep.txt")); err != nil {
		t.Errorf("a file that is not the cache's was removed: %v", err)
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestCacheUsage: bad flags are usage errors, and a namespace cannot reach
// outside CACHE_DIR or glob Redis keys.
func TestCacheUsage(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"CACHE_DIR": t.TempDir()}
	for _, args := range [][]string{
		{"cache", "clear", "--namespace", "../x"},
		{"cache", "clear", "--namespace", "*"},
		{"cache", "clear", "--all", "--namespace", "demo"},
		{"cache", "clear", "--layer", "memory"},
		{"cache", "frob"},
	} {
		e, out, errOut := probeEnv(vars)
		if code := run(context.Background(), e, args); code == 0 {
			t.Errorf("qa %s: exit 0\n%s%s", strings.Join(args, " "), out, errOut)
		}
	}
}
