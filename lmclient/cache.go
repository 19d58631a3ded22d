package lmclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
)

// entry is one cached answer. Usage is not kept: a hit reports none.
type entry struct {
	Text         string `json:"text"`
	FinishReason string `json:"finish_reason"`
}

func (e entry) encode() ([]byte, error) { return json.Marshal(e) }

func decodeEntry(b []byte) (entry, error) {
	var e entry
	if err := json.Unmarshal(b, &e); err != nil {
		return entry{}, fmt.Errorf("decode cache entry: %w", err)
	}
	return e, nil
}

// layer is one cache level. Get reports a miss as ok == false with a nil
// error; errors are failures of the store.
type layer interface {
	name() string
	get(ctx context.Context, key string) (entry, bool, error)
	put(ctx context.Context, key string, e entry) error
	close() error
}

// layeredCache reads memory → disk → Redis and, on a hit below the top,
// fills the layers above; writes go to every layer. A failing layer is
// skipped with a warning: the cache never fails a call.
type layeredCache struct {
	layers []layer
	// handOff is the Redis layer when it is on the queue's Redis (no
	// Deps.CacheRedis): its writes may ride with the caller's
	// (putHandingOff).
	handOff *redisLayer
	log     zerolog.Logger
	metrics *metrics
}

// openCache opens the enabled layers; the disk and Redis ones in the
// stores of the client's namespace.
func openCache(cfg Config, stores CacheStores, deps Deps, log zerolog.Logger, m *metrics) (*layeredCache, error) {
	c := &layeredCache{log: log, metrics: m}
	if cfg.MemoryEnabled {
		mem, err := newMemoryLayer(cfg.MemoryEntries)
		if err != nil {
			return nil, err
		}
		c.layers = append(c.layers, mem)
	}
	if cfg.DiskEnabled {
		disk, err := openDiskLayer(stores.DiskDir, cfg.DiskSizeBytes)
		if err != nil {
			return nil, err
		}
		c.layers = append(c.layers, disk)
	}
	if cfg.RedisEnabled {
		rdb := deps.CacheRedis
		if rdb == nil {
			rdb = deps.Redis
		}
		r := &redisLayer{rdb: rdb, prefix: stores.RedisPrefix, ttl: cfg.RedisTTL}
		c.layers = append(c.layers, r)
		if deps.CacheRedis == nil {
			c.handOff = r
		}
	}
	return c, nil
}

func (c *layeredCache) empty() bool { return len(c.layers) == 0 }

func (c *layeredCache) get(ctx context.Context, key string) (entry, bool) {
	for i, l := range c.layers {
		e, ok, err := l.get(ctx, key)
		if err != nil {
			c.log.Warn().Err(err).Str("layer", l.name()).Msg("cache read failed")
			continue
		}
		if !ok {
			continue
		}
		c.metrics.cacheHits.WithLabelValues(l.name()).Inc()
		for _, up := range c.layers[:i] {
			if err := up.put(ctx, key, e); err != nil {
				c.log.Warn().Err(err).Str("layer", up.name()).Msg("cache fill failed")
			}
		}
		return e, true
	}
	c.metrics.cacheMisses.Inc()
	return entry{}, false
}

func (c *layeredCache) put(ctx context.Context, key string, e entry) error {
	var errs []error
	for _, l := range c.layers {
		if err := l.put(ctx, key, e); err != nil {
			errs = append(errs, fmt.Errorf("write %s cache: %w", l.name(), err))
		}
	}
	return errors.Join(errs...)
}

// putHandingOff is put but for the handOff layer, whose write it returns
// for the caller to make (ok), with the other layers' failures.
func (c *layeredCache) putHandingOff(ctx context.Context, key string, e entry) (w CacheWrite, ok bool, err error) {
	if c.handOff == nil {
		return CacheWrite{}, false, c.put(ctx, key, e)
	}
	var errs []error
	for _, l := range c.layers {
		if l == layer(c.handOff) {
			continue
		}
		if err := l.put(ctx, key, e); err != nil {
			errs = append(errs, fmt.Errorf("write %s cache: %w", l.name(), err))
		}
	}
	b, err := e.encode()
	if err != nil {
		return CacheWrite{}, false, errors.Join(append(errs, err)...)
	}
	return CacheWrite{Key: c.handOff.prefix + key, Value: b, TTL: c.handOff.ttl}, true, errors.Join(errs...)
}

func (c *layeredCache) close() error {
	var errs []error
	for _, l := range c.layers {
		errs = append(errs, l.close())
	}
	return errors.Join(errs...)
}
