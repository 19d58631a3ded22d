package lmclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCachePrefix starts every key of the Redis cache layer; the
// namespace follows it (CacheStores.RedisPrefix).
const RedisCachePrefix = "qa:lmcache:"

// redisLayer is the cache shared by every worker. Every entry has a TTL, so
// it may live on the queue's noeviction Redis without growing for ever.
type redisLayer struct {
	rdb    redis.UniversalClient
	prefix string // RedisCachePrefix + namespace + ":"
	ttl    time.Duration
}

func (r *redisLayer) name() string { return "redis" }

func (r *redisLayer) get(ctx context.Context, key string) (entry, bool, error) {
	b, err := r.rdb.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return entry{}, false, nil
	}
	if err != nil {
		return entry{}, false, fmt.Errorf("get redis cache: %w", err)
	}
	e, err := decodeEntry(b)
	if err != nil {
		return entry{}, false, err
	}
	return e, true, nil
}

func (r *redisLayer) put(ctx context.Context, key string, e entry) error {
	b, err := e.encode()
	if err != nil {
		return err
	}
	if err := r.rdb.Set(ctx, r.prefix+key, b, r.ttl).Err(); err != nil {
		return fmt.Errorf("set redis cache: %w", err)
	}
	return nil
}

func (r *redisLayer) close() error { return nil } // the client belongs to the caller
