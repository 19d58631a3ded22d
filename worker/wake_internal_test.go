package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// asynqKeys are queue q's keys in asynq v0.26's layout (internal/base).
func asynqKeys(q string, names ...string) []string {
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = "asynq:{" + q + "}:" + n
	}
	return keys
}

// TestIsDequeue pins the key shape wakeClient recognises. The shape itself is
// checked against the real asynq by TestBlockingPickupBlocks (pickup_test.go),
// which fails if asynq stops dequeuing this way.
func TestIsDequeue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		keys []string
		want bool
	}{
		{"dequeue", asynqKeys("interactive", "pending", "paused", "active", "lease"), true},
		{"dequeue, other queue", asynqKeys("batch", "pending", "paused", "active", "lease"), true},
		{"dequeue, queue name with colons", asynqKeys("a:b", "pending", "paused", "active", "lease"), true},
		{"enqueue", asynqKeys("interactive", "t:0123", "pending"), false},
		{"enqueue unique", append([]string{"asynq:{interactive}:unique:qa:predict:abc"}, asynqKeys("interactive", "t:0123", "pending")...), false},
		{"requeue (4 keys, pending third)", asynqKeys("interactive", "active", "lease", "pending", "t:0123"), false},
		{"done", asynqKeys("interactive", "active", "lease", "t:0123", "processed:2026-11-29", "processed"), false},
		{"dequeue keys out of order", asynqKeys("interactive", "paused", "pending", "active", "lease"), false},
		{"three of the four keys", asynqKeys("interactive", "pending", "paused", "active"), false},
		{"one key more", asynqKeys("interactive", "pending", "paused", "active", "lease", "x"), false},
		{"our record script", []string{"qa:job:1", "qa:job:1:events", "", "asynq:{interactive}:pending"}, false},
		{"no keys", nil, false},
	}
	for _, tt := range tests {
		if got := isDequeue(tt.keys); got != tt.want {
			t.Errorf("%s: isDequeue(%q) = %v, want %v", tt.name, tt.keys, got, tt.want)
		}
	}
}

// countingClient counts the EvalSha calls that reach Redis. When reply is set
// it answers them itself instead.
type countingClient struct {
	redis.UniversalClient
	calls atomic.Int64
	reply atomic.Pointer[redis.Cmd]
}

func (c *countingClient) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	c.calls.Add(1)
	if r := c.reply.Load(); r != nil {
		return r
	}
	return c.UniversalClient.EvalSha(ctx, sha, keys, args...)
}

// unreachableRedis is a client for a loopback port nothing listens on.
func unreachableRedis(t *testing.T) *redis.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestWakeClientBacksOffWhenRedisIsDown: asynq v0.26 dequeues again at once
// after a failed dequeue (processor.go:188-193), so the wake client must sleep
// before it returns the error, doubling up to maxErrBackoff. The test drives
// a bounded number of dequeues, counts the calls that reach Redis (one each:
// no retries of our own), and checks the backoff each one chose. The only
// clock check is a lower bound (timers never fire early), which proves the
// sleeps happened.
func TestWakeClientBacksOffWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	for _, block := range []bool{true, false} {
		name := "batch"
		if block {
			name = "interactive"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			down := &countingClient{UniversalClient: unreachableRedis(t)}
			stop := make(chan struct{})
			c := &wakeClient{UniversalClient: down, block: block, maxWait: 5 * time.Second, stop: stop}
			dequeue := asynqKeys("interactive", "pending", "paused", "active", "lease")
			var calls int64
			call := func(keys []string, wantBackoff time.Duration) {
				t.Helper()
				err := c.EvalSha(ctx, "0123", keys, 1, "asynq:{interactive}:t:").Err()
				if err == nil || errors.Is(err, redis.Nil) {
					t.Fatalf("EvalSha on a Redis that is down: err = %v", err)
				}
				calls++
				if got := down.calls.Load(); got != calls {
					t.Fatalf("after %d EvalSha calls, %d reached Redis", calls, got)
				}
				if got := time.Duration(c.backoff.Load()); got != wantBackoff {
					t.Fatalf("call %d: backoff = %v, want %v", calls, got, wantBackoff)
				}
			}

			// Another script failing is not ours to slow down.
			call(asynqKeys("interactive", "t:0123", "pending"), 0)

			start := time.Now()
			slept := time.Duration(0)
			for _, d := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond} {
				call(dequeue, d)
				slept += d
			}
			if took := time.Since(start); took < slept {
				t.Fatalf("3 failed dequeues returned after %v, less than the %v of backoff: the client did not sleep", took, slept)
			}

			// Closing stop (shutdown) cuts the sleeps short; the backoff still
			// doubles to its cap and stays there.
			close(stop)
			for _, d := range []time.Duration{400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, maxErrBackoff, maxErrBackoff} {
				call(dequeue, d)
			}

			// Redis answers again (an empty queue): the backoff starts over.
			empty := redis.NewCmd(ctx)
			empty.SetErr(redis.Nil)
			down.reply.Store(empty)
			if err := c.EvalSha(ctx, "0123", dequeue, 1, "asynq:{interactive}:t:").Err(); !errors.Is(err, redis.Nil) {
				t.Fatalf("empty dequeue: err = %v", err)
			}
			if got := c.backoff.Load(); got != 0 {
				t.Fatalf("backoff after a good dequeue = %v, want 0", time.Duration(got))
			}
			if got := c.waits.Load(); got != 0 {
				t.Fatalf("waited %d times after stop was closed", got)
			}
		})
	}
}

func TestSplitSlots(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		slots, n int
		want     []int
	}{
		{100, 1, []int{100}},
		{1000, 4, []int{250, 250, 250, 250}},
		{1001, 4, []int{251, 250, 250, 250}},
		{3, 8, []int{1, 1, 1}},
	} {
		got := splitSlots(tc.slots, tc.n)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("splitSlots(%d, %d) = %v, want %v", tc.slots, tc.n, got, tc.want)
		}
	}
}
