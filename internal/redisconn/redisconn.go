// Package redisconn opens the one kind of Redis client every part of qaqueue
// uses (redis.UniversalClient), from a URL or from Sentinel settings, so that
// asynq, pub/sub, the event streams, the cache, the rate limiter and the
// counters all reach Redis the same way; [AsynqConnOpt] describes the same
// connection to code that opens its own (asynqmon).
//
// TLS: a rediss:// URL turns TLS on, verified against the system's roots
// (in a container, the image's CA bundle; on Linux SSL_CERT_FILE or
// SSL_CERT_DIR point Go at another bundle) unless Options.TLSConfig says
// otherwise. With Sentinel, rediss:// turns TLS on for the Sentinels and the
// master alike, each verified under its own address.
package redisconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Options say where Redis is.
type Options struct {
	// URL is redis://[user:pass@]host:port/db or rediss:// for TLS.
	URL string
	// SentinelAddrs, when set, select Sentinel: the master named
	// SentinelMaster is found through them; URL then only supplies the
	// username, password, db and whether to use TLS.
	SentinelAddrs    []string
	SentinelMaster   string
	SentinelPassword string
	// PoolSize overrides go-redis's default (10 per CPU); workers holding many
	// blocking calls want more.
	PoolSize int
	// TLSConfig, when set, replaces the default TLS settings of a rediss://
	// URL (system roots, the URL's host as the server name): a private CA's
	// pool in RootCAs, client certificates. An empty ServerName is filled
	// with the URL's host (with Sentinel: each address dialled). It has no
	// effect on a redis:// URL.
	TLSConfig *tls.Config
}

// Open returns a client; it does not dial until first use.
func Open(o Options) (redis.UniversalClient, error) {
	uo, err := universal(o)
	if err != nil {
		return nil, err
	}
	return redis.NewUniversalClient(uo), nil
}

// AsynqConnOpt is the same connection as Open's for code that opens its own
// pools (asynqmon): a RedisClientOpt for a URL, a RedisFailoverClientOpt for
// Sentinel, with the same credentials, db and TLS. poolSize bounds those
// pools (0: go-redis's default).
func AsynqConnOpt(o Options, poolSize int) (asynq.RedisConnOpt, error) {
	uo, err := universal(o)
	if err != nil {
		return nil, err
	}
	if uo.MasterName != "" {
		return asynq.RedisFailoverClientOpt{
			MasterName: uo.MasterName, SentinelAddrs: uo.Addrs, SentinelPassword: uo.SentinelPassword,
			Username: uo.Username, Password: uo.Password, DB: uo.DB,
			DialTimeout: uo.DialTimeout, PoolSize: poolSize, TLSConfig: uo.TLSConfig,
		}, nil
	}
	return asynq.RedisClientOpt{
		Addr: uo.Addrs[0], Username: uo.Username, Password: uo.Password, DB: uo.DB,
		DialTimeout: uo.DialTimeout, PoolSize: poolSize, TLSConfig: uo.TLSConfig,
	}, nil
}

func universal(o Options) (*redis.UniversalOptions, error) {
	uo := &redis.UniversalOptions{PoolSize: o.PoolSize, DialTimeout: 5 * time.Second}
	if o.URL != "" {
		u, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("parse redis url: %w", err)
		}
		uo.Addrs = []string{u.Addr}
		uo.Username, uo.Password, uo.DB, uo.TLSConfig = u.Username, u.Password, u.DB, u.TLSConfig
		if uo.TLSConfig != nil && o.TLSConfig != nil {
			tc := o.TLSConfig.Clone()
			if tc.ServerName == "" {
				tc.ServerName = u.TLSConfig.ServerName
			}
			uo.TLSConfig = tc
		}
	}
	if len(o.SentinelAddrs) > 0 {
		if o.SentinelMaster == "" {
			return nil, fmt.Errorf("open redis: REDIS_SENTINEL_MASTER is required with REDIS_SENTINEL_ADDRS")
		}
		uo.Addrs = o.SentinelAddrs
		uo.MasterName = o.SentinelMaster
		uo.SentinelPassword = o.SentinelPassword
		if uo.TLSConfig != nil && (o.TLSConfig == nil || o.TLSConfig.ServerName == "") {
			// The URL's host is not where Sentinel sends us: verify each
			// Sentinel and master under the address dialled.
			tc := uo.TLSConfig.Clone()
			tc.ServerName = ""
			uo.TLSConfig = tc
		}
	}
	if len(uo.Addrs) == 0 {
		return nil, fmt.Errorf("open redis: no REDIS_URL or REDIS_SENTINEL_ADDRS")
	}
	return uo, nil
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
