// Package redisconn opens the one kind of Redis client every part of qaqueue
// uses (redis.UniversalClient), from a URL or from Sentinel settings, so that
// asynq, pub/sub, the event streams, the cache, the rate limiter and the
// counters all reach Redis the same way.
package redisconn

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options say where Redis is.
type Options struct {
	// URL is redis://[user:pass@]host:port/db or rediss:// for TLS.
	URL string
	// SentinelAddrs, when set, select Sentinel: the master named
	// SentinelMaster is found through them; URL then only supplies the
	// username, password and db.
	SentinelAddrs    []string
	SentinelMaster   string
	SentinelPassword string
	// PoolSize overrides go-redis's default (10 per CPU); workers holding many
	// blocking calls want more.
	PoolSize int
}

// Open returns a client; it does not dial until first use.
func Open(o Options) (redis.UniversalClient, error) {
	uo := &redis.UniversalOptions{PoolSize: o.PoolSize, DialTimeout: 5 * time.Second}
	if o.URL != "" {
		u, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("parse redis url: %w", err)
		}
		uo.Addrs = []string{u.Addr}
		uo.Username, uo.Password, uo.DB, uo.TLSConfig = u.Username, u.Password, u.DB, u.TLSConfig
	}
	if len(o.SentinelAddrs) > 0 {
		if o.SentinelMaster == "" {
			return nil, fmt.Errorf("open redis: REDIS_SENTINEL_MASTER is required with REDIS_SENTINEL_ADDRS")
		}
		uo.Addrs = o.SentinelAddrs
		uo.MasterName = o.SentinelMaster
		uo.SentinelPassword = o.SentinelPassword
	}
	if len(uo.Addrs) == 0 {
		return nil, fmt.Errorf("open redis: no REDIS_URL or REDIS_SENTINEL_ADDRS")
	}
	return redis.NewUniversalClient(uo), nil
}

// Ping waits for Redis to answer, up to timeout, so start-up fails with a
// clear message instead of later, mid-request.
func Ping(ctx context.Context, c redis.UniversalClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		if err = c.Ping(ctx).Err(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis did not answer within %s: %w", timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
