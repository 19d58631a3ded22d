package worker

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// wakeClient is the Redis client handed to an asynq Server so that an idle
// server blocks in Redis instead of polling (PICKUP-AND-DASHBOARD.md §1.4).
//
// asynq v0.26 dequeues with one EVALSHA per queue and, when every queue is
// empty, sleeps TaskCheckInterval. When that EVALSHA finds a single-queue
// server's pending list empty, wakeClient waits with BLMOVE pending→pending
// (an atomic no-op rotation that returns as soon as the list is non-empty,
// whoever pushed), then runs the dequeue again. It gives up after maxWait and
// lets asynq sleep its (short) interval, so if a future asynq changes the
// dequeue call's shape, the server falls back to ordinary polling.
//
// It also backs off when the dequeue fails outright (Redis unreachable):
// asynq v0.26 would otherwise retry at once and spin a core.
type wakeClient struct {
	redis.UniversalClient
	block   bool          // wait for work (interactive server); false: error backoff only
	maxWait time.Duration // ≤ 10 s: a task picked up after waiting starts with 30 s − maxWait of lease
	stop    <-chan struct{}

	waits   atomic.Int64 // BLMOVE waits begun, for the test that proves blocking
	backoff atomic.Int64 // current error backoff, ns
}

const (
	blmoveTimeout = time.Second
	maxErrBackoff = 2 * time.Second
)

// isDequeue recognises asynq's dequeue script by its keys:
// asynq:{q}:pending, asynq:{q}:paused, asynq:{q}:active, asynq:{q}:lease.
func isDequeue(keys []string) bool {
	return len(keys) == 4 &&
		strings.HasSuffix(keys[0], ":pending") && strings.HasSuffix(keys[1], ":paused") &&
		strings.HasSuffix(keys[2], ":active") && strings.HasSuffix(keys[3], ":lease")
}

// Eval is how go-redis runs a script Redis does not have cached yet (after a
// NOSCRIPT reply: a fresh or restarted Redis). Waiting here too keeps the
// first idle dequeue from sleeping a whole poll interval.
func (c *wakeClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	cmd := c.UniversalClient.Eval(ctx, script, keys, args...)
	if !isDequeue(keys) || !c.block || !errors.Is(cmd.Err(), redis.Nil) {
		return cmd
	}
	sum := sha1.Sum([]byte(script))
	return c.waitForWork(ctx, hex.EncodeToString(sum[:]), keys, args, cmd)
}

// EvalSha is where asynq's dequeue normally arrives.
func (c *wakeClient) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	cmd := c.UniversalClient.EvalSha(ctx, sha, keys, args...)
	if !isDequeue(keys) {
		return cmd
	}
	err := cmd.Err()
	switch {
	case err == nil:
		c.backoff.Store(0)
		return cmd
	case errors.Is(err, redis.Nil):
		c.backoff.Store(0)
		if !c.block {
			return cmd
		}
		return c.waitForWork(ctx, sha, keys, args, cmd)
	case isNoScript(err):
		return cmd // go-redis falls back to EVAL; the next call is ours again
	default:
		c.sleepBackoff()
		return cmd
	}
}

func (c *wakeClient) waitForWork(ctx context.Context, sha string, keys []string, args []any, empty *redis.Cmd) *redis.Cmd {
	pending, paused := keys[0], keys[1]
	for end := time.Now().Add(c.maxWait); time.Until(end) > blmoveTimeout/2; {
		if c.stopped() {
			return empty
		}
		c.waits.Add(1)
		err := c.UniversalClient.BLMove(ctx, pending, pending, "RIGHT", "RIGHT", blmoveTimeout).Err()
		if errors.Is(err, redis.Nil) {
			continue // timed out: still empty
		}
		if err != nil {
			return empty
		}
		again := c.UniversalClient.EvalSha(ctx, sha, keys, args...)
		if !errors.Is(again.Err(), redis.Nil) {
			return again
		}
		// Work is there but the dequeue found none: the queue is paused.
		if n, _ := c.UniversalClient.Exists(ctx, paused).Result(); n == 1 {
			c.sleep(time.Second)
			return empty
		}
	}
	return empty
}

func (c *wakeClient) sleepBackoff() {
	d := time.Duration(c.backoff.Load())
	switch {
	case d == 0:
		d = 50 * time.Millisecond
	case d < maxErrBackoff:
		d *= 2
	}
	d = min(d, maxErrBackoff)
	c.backoff.Store(int64(d))
	c.sleep(d)
}

func (c *wakeClient) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.stop:
	}
}

func (c *wakeClient) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

func isNoScript(err error) bool { return strings.HasPrefix(err.Error(), "NOSCRIPT") }
