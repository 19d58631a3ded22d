package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/redisconn"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/redis/go-redis/v9"
)

const cacheUsage = `usage: qa cache [info]
       qa cache clear [--namespace NAME | --all] [--layer disk|redis|all]

The LM answer cache has three layers: memory (in each worker process), disk
(CACHE_DIR) and Redis (CACHE_REDIS_URL, else the queue's REDIS_URL). The disk
and Redis layers are split into namespaces, one per model and base URL, and
"demo" for the demo LM of qa dev.

  info    say where each layer of the current configuration's namespace
          lives, and which other namespaces the disk holds (the default)
  clear   delete the current namespace's entries from the disk and Redis
          layers; with --namespace another one, with --all every one. Only
          the cache's own files and keys (qa:lmcache:*) are deleted, with
          SCAN and UNLINK, never FLUSHDB. Running workers keep what they
          hold in memory: restart them afterwards.
`

// runCache is `qa cache`: where the LM cache lives, and `qa cache clear`.
func runCache(ctx context.Context, e env, args []string) error {
	sub, rest := "info", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, rest = args[0], args[1:]
	}
	switch sub {
	case "info":
		return runCacheInfo(e, rest)
	case "clear":
		return runCacheClear(ctx, e, rest)
	}
	fmt.Fprint(e.stderr, cacheUsage)
	return errUsage
}

// cacheFlags parses a cache subcommand's flags; -h prints the usage.
func cacheFlags(e env, name string, args []string, define func(*flag.FlagSet)) error {
	fs := flag.NewFlagSet("qa cache "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	define(fs)
	fs.Usage = func() {
		fmt.Fprint(e.stderr, cacheUsage)
		if name == "clear" {
			fmt.Fprintln(e.stderr, "\nflags:")
			fs.PrintDefaults()
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	return nil
}

// lmCache is the LM cache of the current configuration.
type lmCache struct {
	cfg    *config.Config
	stores lmclient.CacheStores
	// what answers, for people: the model and its base URL, or the demo LM.
	what string
}

// currentCache loads the configuration and resolves its cache namespace as
// the workers would; when no LM is configured, that is the demo LM's
// namespace, which qa dev then uses.
func currentCache(e env) (*lmCache, error) {
	cfg, _, err := loadConfig(e)
	if err != nil {
		return nil, errConfig(err)
	}
	stores, prov, err := lmclient.StoresFor(lmConfig(cfg, lookupEnv(e)))
	if err != nil {
		return &lmCache{cfg: cfg, stores: lmclient.StoresIn(cfg.Cache.Dir, demoCacheNamespace),
			what: "the demo LM of qa dev (no LM is configured: " + err.Error() + ")"}, nil
	}
	return &lmCache{cfg: cfg, stores: stores, what: cfg.LM.Model + " at " + config.RedactURL(prov.BaseURL)}, nil
}

// redisServer names the Redis that holds the Redis layer, or says why
// there is none to reach: REDIS_URL unset means qa dev's embedded Redis.
func (c *lmCache) redisServer() (name, note string) {
	switch {
	case c.cfg.Cache.RedisURL != "":
		return c.cfg.Cache.RedisURL.String(), ""
	case c.cfg.Redis.UsesSentinel():
		return "the Sentinel master " + c.cfg.Redis.SentinelMaster, ""
	case c.cfg.Redis.URL != "":
		return c.cfg.Redis.URL.String(), ""
	}
	return "", "REDIS_URL is unset: qa dev keeps this layer in its embedded Redis, gone when it exits " +
		"(qa api and qa worker would use " + config.DefaultRedisURL + "; set REDIS_URL to reach it)"
}

// openCacheRedis connects to the Redis layer's server, as newLM does.
func (c *lmCache) openCacheRedis(ctx context.Context) (redis.UniversalClient, error) {
	if url := c.cfg.Cache.RedisURL.Reveal(); url != "" {
		rdb, err := redisconn.Open(redisconn.Options{URL: url, PoolSize: 1})
		if err != nil {
			return nil, fmt.Errorf("open CACHE_REDIS_URL: %w", err)
		}
		return rdb, nil // the first SCAN says if it is unreachable
	}
	return openRedis(ctx, c.cfg, c.cfg.Redis.EffectiveURL().Reveal(), 1)
}

func runCacheInfo(e env, args []string) error {
	if err := cacheFlags(e, "info", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	c, err := currentCache(e)
	if err != nil {
		return err
	}
	w := e.stdout
	cfg, st := c.cfg, c.stores
	fmt.Fprintf(w, "LM cache of %s\n", c.what)
	fmt.Fprintf(w, "  namespace  %s\n", st.Namespace)
	fmt.Fprintf(w, "  memory     %s\n", onOff(cfg.Cache.MemoryEnabled, "CACHE_MEMORY_ENABLED",
		fmt.Sprintf("in each worker process, up to %d entries; gone when it exits", cfg.Cache.MemoryEntries)))
	fmt.Fprintf(w, "  disk       %s\n", onOff(cfg.Cache.DiskEnabled, "CACHE_DISK_ENABLED",
		fmt.Sprintf("%s, up to %s", st.DiskPath, cfg.Cache.DiskSize)))
	redisText := "keys " + st.RedisPrefix + "*"
	if server, note := c.redisServer(); note != "" {
		redisText += "\n             " + note
	} else {
		redisText += fmt.Sprintf(" on %s, each kept %s", server, setting(cfg, "CACHE_REDIS_TTL").Value)
	}
	fmt.Fprintf(w, "  redis      %s\n", onOff(cfg.Cache.RedisEnabled, "CACHE_REDIS_ENABLED", redisText))

	all, err := lmclient.DiskNamespaces(cfg.Cache.Dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nOn disk in %s:\n", cfg.Cache.Dir)
	if len(all) == 0 {
		fmt.Fprintln(w, "  nothing yet")
	}
	for _, d := range all {
		name := d.Name
		switch {
		case name == "":
			name = "(before namespaces)"
		case name == st.Namespace:
			name += " (this one)"
		}
		fmt.Fprintf(w, "  %-20s %s\n", name, humanBytes(d.Bytes))
	}
	fmt.Fprintln(w, "\nClear: qa cache clear (this namespace), --namespace NAME, or --all.")
	return nil
}

// onOff is text when the layer is on, else says which variable turned it off.
func onOff(on bool, variable, text string) string {
	if on {
		return text
	}
	return "off (" + variable + "=false)"
}

func runCacheClear(ctx context.Context, e env, args []string) error {
	var ns, layer string
	var all bool
	err := cacheFlags(e, "clear", args, func(fs *flag.FlagSet) {
		fs.StringVar(&ns, "namespace", "", "the namespace to clear (default: the current configuration's; see qa cache)")
		fs.BoolVar(&all, "all", false, "clear every namespace, and entries from before namespaces")
		fs.StringVar(&layer, "layer", "all", "the layer to clear: disk, redis or all")
	})
	if err != nil {
		return err
	}
	if layer != "disk" && layer != "redis" && layer != "all" {
		return fmt.Errorf("--layer must be disk, redis or all, not %q", layer)
	}
	if all && ns != "" {
		return errors.New("--namespace and --all exclude each other")
	}
	c, err := currentCache(e)
	if err != nil {
		return err
	}
	switch {
	case all:
		ns = "" // lmclient's "every namespace"
	case ns == "":
		ns = c.stores.Namespace
	default:
		if err := lmclient.ValidateNamespace(ns); err != nil {
			return err
		}
	}
	scope := "namespace " + ns
	if all {
		scope = "every namespace"
	}
	if layer != "redis" {
		if err := clearDisk(e.stdout, c.cfg.Cache.Dir, ns, scope); err != nil {
			return err
		}
	}
	if layer != "disk" {
		if err := c.clearRedis(ctx, e.stdout, ns, scope); err != nil {
			return err
		}
	}
	fmt.Fprintln(e.stdout, "Running workers keep what they hold in memory: restart them.")
	return nil
}

func clearDisk(w io.Writer, dir, ns, scope string) error {
	gone, err := lmclient.ClearDiskCache(dir, ns)
	for _, d := range gone {
		name := d.Name
		if name == "" {
			name = "(before namespaces)"
		}
		fmt.Fprintf(w, "disk: removed %s (%s) from %s\n", name, humanBytes(d.Bytes), dir)
	}
	if err != nil {
		return fmt.Errorf("clear the disk cache in CACHE_DIR %s: %w", dir, err)
	}
	if len(gone) == 0 {
		fmt.Fprintf(w, "disk: nothing cached for %s in %s\n", scope, dir)
	}
	return nil
}

func (c *lmCache) clearRedis(ctx context.Context, w io.Writer, ns, scope string) error {
	server, note := c.redisServer()
	if note != "" {
		fmt.Fprintf(w, "redis: skipped: %s\n", note)
		return nil
	}
	rdb, err := c.openCacheRedis(ctx)
	if err != nil {
		return fmt.Errorf("clear the redis cache: %w", err)
	}
	defer rdb.Close()
	n, err := lmclient.ClearRedisCache(ctx, rdb, ns)
	if err != nil {
		return fmt.Errorf("clear the redis cache on %s (%d keys deleted): %w", server, n, err)
	}
	fmt.Fprintf(w, "redis: deleted %d %s of %s on %s\n", n, plural(int(n), "key"), scope, server)
	return nil
}

// humanBytes writes a size for people: 512 B, 1.5 kB, 2.3 MB, 1.0 GB.
func humanBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n), "kMGT"
	for i := range unit {
		f /= 1000
		if f < 1000 || i == len(unit)-1 {
			return fmt.Sprintf("%.1f %cB", f, unit[i])
		}
	}
	return ""
}
