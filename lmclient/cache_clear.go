package lmclient

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/redis/go-redis/v9"
)

// clearScanCount is the COUNT hint of each SCAN, and so about the size of
// each UNLINK.
const clearScanCount = 1000

// ClearRedisCache deletes the Redis layer's entries of namespace ns, or of
// every namespace (and the entries written before namespaces) when ns is
// "", and returns how many keys it deleted. It walks the keyspace with SCAN
// and deletes each batch with UNLINK, never KEYS or FLUSHDB: the cache may
// share its Redis with the queue, whose keys it must not block nor touch.
// The service's Redis is one master (see redisconn), where one SCAN sees
// every key.
func ClearRedisCache(ctx context.Context, rdb redis.UniversalClient, ns string) (int64, error) {
	match := RedisCachePrefix + "*"
	if ns != "" {
		if err := ValidateNamespace(ns); err != nil {
			return 0, err
		}
		match = RedisCachePrefix + ns + ":*"
	}
	var deleted int64
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, match, clearScanCount).Result()
		if err != nil {
			return deleted, fmt.Errorf("scan redis cache keys: %w", err)
		}
		if len(keys) > 0 {
			n, err := rdb.Unlink(ctx, keys...).Result()
			if err != nil {
				return deleted, fmt.Errorf("unlink redis cache keys: %w", err)
			}
			deleted += n
		}
		if next == 0 {
			return deleted, nil
		}
		cursor = next
	}
}

// DiskNamespace is one namespace of the disk layer under a cache directory.
type DiskNamespace struct {
	// Name is the namespace; "" is the database written before namespaces,
	// directly in the cache directory.
	Name string
	// Path is its SQLite database.
	Path string
	// Bytes is the size of the database's files.
	Bytes int64
}

// diskSuffixes are the files SQLite keeps beside a database.
var diskSuffixes = []string{"", "-wal", "-shm", "-journal"}

// DiskNamespaces lists the namespaces that have a database under dir, by
// name; a missing dir has none.
func DiskNamespaces(dir string) ([]DiskNamespace, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list cache dir: %w", err)
	}
	names := []string{""}
	for _, e := range entries {
		if e.IsDir() && ValidateNamespace(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	var out []DiskNamespace
	for _, ns := range names {
		if d, ok := diskNamespace(dir, ns); ok {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// diskNamespace describes namespace ns under dir, if it has a database.
func diskNamespace(dir, ns string) (DiskNamespace, bool) {
	d := DiskNamespace{Name: ns, Path: diskPath(dir, ns)}
	found := false
	for _, suffix := range diskSuffixes {
		if fi, err := os.Stat(d.Path + suffix); err == nil && fi.Mode().IsRegular() {
			d.Bytes += fi.Size()
			found = found || suffix == ""
		}
	}
	return d, found
}

// ClearDiskCache deletes the disk layer's database of namespace ns under
// dir, or every namespace's (and the one written before namespaces) when ns
// is "", and returns what it deleted. It removes only the databases' own
// files, and then their namespace directories if nothing else is in them:
// never anything else under dir, whatever CACHE_DIR points at. A process
// with a database open keeps reading its deleted file until it restarts.
func ClearDiskCache(dir, ns string) ([]DiskNamespace, error) {
	var targets []DiskNamespace
	if ns == "" {
		all, err := DiskNamespaces(dir)
		if err != nil {
			return nil, err
		}
		targets = all
	} else {
		if err := ValidateNamespace(ns); err != nil {
			return nil, err
		}
		if d, ok := diskNamespace(dir, ns); ok {
			targets = []DiskNamespace{d}
		}
	}
	for i, d := range targets {
		for _, suffix := range diskSuffixes {
			if err := os.Remove(d.Path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return targets[:i], fmt.Errorf("remove disk cache: %w", err)
			}
		}
		if d.Name != "" {
			_ = os.Remove(filepath.Dir(d.Path)) // fails, harmlessly, unless empty
		}
	}
	return targets, nil
}
