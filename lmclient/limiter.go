package lmclient

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/qaqueue/qaqueue/program"
)

//go:embed limiter.lua
var limiterLua string

// batchPoll is how often a batch caller looks again while interactive
// callers are waiting for capacity.
const batchPoll = 100 * time.Millisecond

// paceBurst is the limiter's bucket, as time at the limit: a quiet fleet may
// send LM_RPM × paceBurst / 1 min calls at once (at least one), and LM_TPM
// alike, then calls go out evenly at the rate. Providers enforce their
// per-minute limits over about a second (OpenAI documents 60,000 RPM
// enforced as 1,000 per second), so a bigger bucket turns a backlog into a
// burst such a provider answers with 429s: a minute's bucket sent 237 calls
// in one second at 300/min. Half a second keeps the busiest second at
// 1.5 × R/60 and leaves half a second's slack under a provider's per-second
// bucket for calls that reach it unevenly.
const paceBurst = 500 * time.Millisecond

// limiter is the fleet-wide rate limit toward the provider (LM_RPM, LM_TPM)
// and the cool-down a 429 with Retry-After sets, shared through Redis by one
// Lua script (limiter.lua). Interactive callers that wait register
// themselves; batch callers take no capacity while any is registered.
// Without Redis only the cool-down applies, per process.
type limiter struct {
	rdb      redis.UniversalClient
	script   *redis.Script
	rpm, tpm int
	// rcap and tcap are the buckets' capacities (paceBurst).
	rcap, tcap float64
	maxWait    time.Duration
	keys       []string
	metrics    *metrics
	log        zerolog.Logger

	mu            sync.Mutex
	localCooldown time.Time // used without Redis
}

func newLimiter(cfg Config, ns string, rdb redis.UniversalClient, m *metrics, log zerolog.Logger) *limiter {
	// A provider's limits and its 429 cool-downs belong to the endpoint that
	// enforces them, so the keys carry the cache namespace beside the model:
	// another server answering to the same model name (qa dev's demo LM) has
	// limits of its own. The hash tag keeps the three keys in one Redis
	// Cluster slot.
	base := "qa:lmrl:{" + cfg.Model + "@" + ns + "}"
	return &limiter{
		rdb: rdb, script: redis.NewScript(limiterLua),
		rpm: cfg.RPM, tpm: cfg.TPM, rcap: bucketCap(cfg.RPM), tcap: bucketCap(cfg.TPM),
		maxWait: cfg.MaxWait, metrics: m, log: log,
		keys: []string{base, base + ":iw", base + ":cooldown"},
	}
}

// bucketCap is the capacity of a bucket refilled at perMinute: paceBurst's
// share of it, at least one (a call or a token).
func bucketCap(perMinute int) float64 {
	return max(1, float64(perMinute)*paceBurst.Seconds()/60)
}

// acquire waits until the call may go out, bounded by ctx and MaxWait.
func (l *limiter) acquire(ctx context.Context, prio program.Priority, cost int64) error {
	start := time.Now()
	id := newWaiterID()
	released := false
	defer func() {
		if !released && l.rdb != nil && prio == program.PriorityInteractive {
			l.release(id)
		}
	}()
	for {
		wait, cooldown, err := l.try(ctx, prio, cost, id)
		if err != nil {
			return err
		}
		if wait <= 0 {
			released = true // the script removed the waiter
			l.metrics.waits.Observe(time.Since(start).Seconds())
			return nil
		}
		if time.Since(start)+wait > l.maxWait {
			reason := "rate_limit"
			if cooldown {
				reason = "cooldown"
			}
			l.metrics.deferred.WithLabelValues(reason).Inc()
			return &RateLimitedError{Delay: wait, Cooldown: cooldown}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for lm rate limit: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// try asks once. A Redis failure admits the call: the limiter protects the
// provider's quota, and a Redis blip must not fail every LM call with it.
func (l *limiter) try(ctx context.Context, prio program.Priority, cost int64, id string) (time.Duration, bool, error) {
	if l.rdb == nil {
		l.mu.Lock()
		wait := time.Until(l.localCooldown)
		l.mu.Unlock()
		return wait, wait > 0, nil
	}
	res, err := l.script.Run(ctx, l.rdb, l.keys, "acquire", l.rpm, l.tpm, cost, int(prio), id, batchPoll.Milliseconds(), l.rcap, l.tcap).Int64Slice()
	if err != nil {
		if ctx.Err() != nil {
			return 0, false, fmt.Errorf("wait for lm rate limit: %w", ctx.Err())
		}
		l.log.Warn().Err(err).Msg("rate limiter unavailable: calling without it")
		return 0, false, nil
	}
	return time.Duration(res[0]) * time.Millisecond, res[1] == 1, nil
}

// adjust charges (or with a negative n gives back) n tokens, once the real
// usage is known.
func (l *limiter) adjust(ctx context.Context, n int64) {
	if l.rdb == nil || l.tpm <= 0 || n == 0 {
		return
	}
	_ = l.script.Run(context.WithoutCancel(ctx), l.rdb, l.keys, "adjust", l.tpm, n, l.tcap).Err()
}

// setCooldown makes every client of this endpoint wait d before calling.
func (l *limiter) setCooldown(ctx context.Context, d time.Duration) {
	if l.rdb == nil {
		l.mu.Lock()
		if until := time.Now().Add(d); until.After(l.localCooldown) {
			l.localCooldown = until
		}
		l.mu.Unlock()
		return
	}
	_ = l.script.Run(context.WithoutCancel(ctx), l.rdb, l.keys, "cooldown", d.Milliseconds()).Err()
}

func (l *limiter) release(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.script.Run(ctx, l.rdb, l.keys, "release", id).Err()
}

func newWaiterID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
