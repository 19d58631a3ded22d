package lmclient

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"strconv"
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
// With no limit set, calls send Redis nothing: the limiter mirrors the
// fleet's cool-down, which the script announces on its key's name (follow).
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

	// mirror is set with Redis and no limit: calls check localCooldown,
	// which follow keeps, instead of running the script.
	mirror bool
	stop   func()        // ends follow
	done   chan struct{} // closed when follow has ended

	mu            sync.Mutex
	localCooldown time.Time // used without Redis, or mirrored
}

func newLimiter(cfg Config, ns string, rdb redis.UniversalClient, m *metrics, log zerolog.Logger) *limiter {
	// A provider's limits and its 429 cool-downs belong to the endpoint that
	// enforces them, so the keys carry the cache namespace beside the model:
	// another server answering to the same model name (qa dev's demo LM) has
	// limits of its own. The hash tag keeps the three keys in one Redis
	// Cluster slot.
	base := "qa:lmrl:{" + cfg.Model + "@" + ns + "}"
	l := &limiter{
		rdb: rdb, script: redis.NewScript(limiterLua),
		rpm: cfg.RPM, tpm: cfg.TPM, rcap: bucketCap(cfg.RPM), tcap: bucketCap(cfg.TPM),
		maxWait: cfg.MaxWait, metrics: m, log: log,
		keys: []string{base, base + ":iw", base + ":cooldown"},
	}
	if rdb != nil && cfg.RPM <= 0 && cfg.TPM <= 0 {
		l.mirror = true
		l.follow()
	}
	return l
}

// scripted says whether calls ask the script: with Redis and a limit set.
func (l *limiter) scripted() bool { return l.rdb != nil && !l.mirror }

// follow mirrors the fleet's cool-down until close: it subscribes to the
// channel the script announces a cool-down on and, once subscribed (again
// after a reconnection, which may have missed an announcement), reads what
// is left of the current one.
func (l *limiter) follow() {
	ctx, cancel := context.WithCancel(context.Background())
	ps := l.rdb.Subscribe(ctx, l.keys[2])
	l.stop = func() { cancel(); _ = ps.Close() }
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		for msg := range ps.ChannelWithSubscriptions() {
			switch m := msg.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					l.readCooldown(ctx)
				}
			case *redis.Message:
				if ms, err := strconv.ParseInt(m.Payload, 10, 64); err == nil {
					l.coolLocally(time.Duration(ms) * time.Millisecond)
				}
			}
		}
	}()
}

// readCooldown copies what is left of the fleet's cool-down.
func (l *limiter) readCooldown(ctx context.Context) {
	d, err := l.rdb.PTTL(ctx, l.keys[2]).Result()
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn().Err(err).Msg("read lm cool-down: following announcements only")
		}
		return
	}
	l.coolLocally(d) // negative when there is none
}

// close stops following the fleet's cool-down.
func (l *limiter) close() {
	if l.stop != nil {
		l.stop()
		<-l.done
	}
}

// coolLocally extends, never shortens, the process's cool-down to d from now.
func (l *limiter) coolLocally(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := time.Now().Add(d); until.After(l.localCooldown) {
		l.localCooldown = until
	}
}

// cooldownLeft is what is left of the process's cool-down.
func (l *limiter) cooldownLeft() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Until(l.localCooldown)
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
		if !released && l.scripted() && prio == program.PriorityInteractive {
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
	if !l.scripted() {
		wait := l.cooldownLeft()
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
	if !l.scripted() || l.tpm <= 0 || n == 0 {
		return
	}
	_ = l.script.Run(context.WithoutCancel(ctx), l.rdb, l.keys, "adjust", l.tpm, n, l.tcap).Err()
}

// setCooldown makes every client of this endpoint wait d before calling.
// This process's mirror holds at once, not when the announcement comes back.
func (l *limiter) setCooldown(ctx context.Context, d time.Duration) {
	if !l.scripted() {
		l.coolLocally(d)
	}
	if l.rdb == nil {
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
