package lmclient

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
)

// Cache namespaces. The cache key is DSPy's (CacheKey): it leaves out the
// base URL, which is safe in DSPy, where a process talks to one endpoint.
// Here the disk directory and the Redis outlive the process and are shared
// by every configuration pointed at them, and two servers answering to one
// model name are not the same model (qa dev's demo LM answers as
// openai/gpt-4o-mini). So the key stays DSPy's and the stores are split
// instead: each endpoint reads and writes its own namespace, a subdirectory
// of Config.Dir and a segment of the Redis keys. The memory layer needs no
// namespace: it lives in one Client, which calls one endpoint.

// namespaceRE is what a namespace may be: it names a directory and a Redis
// key segment, so no separators and no glob characters.
var namespaceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// EndpointNamespace is the cache namespace of model served at baseURL (the
// resolved Provider.BaseURL): the first 12 hex digits of the SHA-256 of both.
func EndpointNamespace(model, baseURL string) string {
	sum := sha256.Sum256([]byte(model + "\n" + baseURL))
	return hex.EncodeToString(sum[:6])
}

// ValidateNamespace reports a namespace that cannot name a directory and a
// Redis key segment: up to 64 lowercase letters, digits, '-' and '_'.
func ValidateNamespace(ns string) error {
	if !namespaceRE.MatchString(ns) {
		return fmt.Errorf("cache namespace %q: use 1 to 64 lowercase letters, digits, '-' and '_'", ns)
	}
	return nil
}

// CacheStores says where a client's persistent cache layers keep entries.
type CacheStores struct {
	// Namespace is Config.CacheNamespace, else EndpointNamespace.
	Namespace string
	// DiskDir is the disk layer's directory, Config.Dir/Namespace.
	DiskDir string
	// DiskPath is the disk layer's SQLite database, in DiskDir.
	DiskPath string
	// RedisPrefix starts every key of the Redis layer:
	// RedisCachePrefix + Namespace + ":".
	RedisPrefix string
}

// StoresFor resolves cfg's provider as New does and says where a client
// built from cfg keeps its cache, without opening anything.
func StoresFor(cfg Config) (CacheStores, Provider, error) {
	cfg = cfg.WithDefaults()
	prov, err := ResolveProvider(cfg.Model, cfg.APIBase, cfg.APIKey, cfg.AzureAPIVersion, cfg.LookupEnv)
	if err != nil {
		return CacheStores{}, Provider{}, err
	}
	ns := cfg.CacheNamespace
	if ns == "" {
		ns = EndpointNamespace(cfg.Model, prov.BaseURL)
	}
	return StoresIn(cfg.Dir, ns), prov, nil
}

// StoresIn is where namespace ns keeps its entries, its disk layer under dir.
func StoresIn(dir, ns string) CacheStores {
	return CacheStores{Namespace: ns, DiskDir: diskDir(dir, ns), DiskPath: diskPath(dir, ns), RedisPrefix: RedisCachePrefix + ns + ":"}
}

// diskFile is the disk layer's database file in its namespace directory.
const diskFile = "lmcache.sqlite"

// diskDir is namespace ns's directory under dir; ns "" is dir itself, where
// the database was written before namespaces.
func diskDir(dir, ns string) string { return filepath.Join(dir, ns) }

// diskPath is namespace ns's database under dir.
func diskPath(dir, ns string) string { return filepath.Join(diskDir(dir, ns), diskFile) }
