package lmclient

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
)

// twoWorkers is one fake LM and two clients sharing one Redis, as two worker
// processes would.
func twoWorkers(t *testing.T, mod func(*Config)) (*bundle, *Client, *redistest.DB) {
	t.Helper()
	db := redistest.New(t)
	b := setup(t, withRedis(db), func(c *Config, _ *Deps) { mod(c) })
	return b, newClient(t, b.cfg, Deps{Redis: db.Client}), db
}

func TestSharedRPM(t *testing.T) {
	t.Parallel()
	// At 2 a minute the bucket holds one call: the other worker's call
	// right after it must wait its 30 s interval.
	b, other, _ := twoWorkers(t, func(c *Config) { c.RPM = 2; c.MaxWait = 50 * time.Millisecond })
	if _, err := b.c.Complete(ctxT(t), chatRequest("q1")); err != nil {
		t.Fatalf("first call: %v", err)
	}
	_, err := other.Complete(ctxT(t), chatRequest("q2"))
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.Cooldown || rl.Delay <= 50*time.Millisecond {
		t.Fatalf("second call, from the other worker = %v, want a RateLimitedError with the delay", err)
	}
	if d, ok := RetryAfter(err); !ok || d != rl.Delay || !Retryable(err) {
		t.Errorf("RetryAfter = %s, %v", d, ok)
	}
	if calls(b) != 1 {
		t.Errorf("LM calls = %d, want 1", calls(b))
	}
}

func TestSharedCooldown(t *testing.T) {
	t.Parallel()
	// A limit set, so that the script holds the other worker; with none,
	// it mirrors the cool-down (TestCooldownMirrored).
	b, other, _ := twoWorkers(t, func(c *Config) { c.RPM = 1000; c.MaxWait = 100 * time.Millisecond })
	b.srv.FailNext(1, fakelm.Status429(30*time.Second))
	_, err := b.c.Complete(ctxT(t), chatRequest("throttled"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 429 {
		t.Fatalf("first call = %v, want the 429", err)
	}
	_, err = other.Complete(ctxT(t), chatRequest("another"))
	var rl *RateLimitedError
	if !errors.As(err, &rl) || !rl.Cooldown || rl.Delay < 20*time.Second {
		t.Fatalf("other worker = %v, want the shared cool-down", err)
	}
	if calls(b) != 1 {
		t.Errorf("LM calls = %d: the cool-down did not hold the other worker", calls(b))
	}
}

func TestLocalCooldownWithoutRedis(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config, _ *Deps) { c.MaxWait = 50 * time.Millisecond })
	b.srv.FailNext(1, fakelm.Status429(30*time.Second))
	_, _ = b.c.Complete(ctxT(t), chatRequest("throttled"))
	_, err := b.c.Complete(ctxT(t), chatRequest("again"))
	var rl *RateLimitedError
	if !errors.As(err, &rl) || !rl.Cooldown {
		t.Fatalf("err = %v, want the local cool-down", err)
	}
}

func TestLimiterWaitsThenCalls(t *testing.T) {
	t.Parallel()
	b, _, db := twoWorkers(t, func(c *Config) { c.RPM = 6000 })
	// A bucket 50 requests in debt, as of the server's now: at 100 a second
	// the next call must wait about half a second, well within MaxWait.
	now, err := db.Client.Time(ctxT(t)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Client.HSet(ctxT(t), b.c.limiter.keys[0], "r", "-50", "t", "0", "ts", now.UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.Complete(ctxT(t), chatRequest("patient")); err != nil {
		t.Fatalf("a call within MaxWait must wait and succeed: %v", err)
	}
	var m dto.Metric
	if err := b.c.metrics.waits.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.GetHistogram().GetSampleCount() != 1 || m.GetHistogram().GetSampleSum() <= 0 {
		t.Errorf("waits = %v, want one positive wait", m.GetHistogram())
	}
	if calls(b) != 1 {
		t.Errorf("LM calls = %d", calls(b))
	}
}

func TestInteractiveBeforeBatch(t *testing.T) {
	t.Parallel()
	b, _, db := twoWorkers(t, func(c *Config) { c.RPM = 1000; c.MaxWait = 50 * time.Millisecond })
	ctx := ctxT(t)
	// An interactive caller is waiting for capacity somewhere in the fleet.
	far := time.Now().Add(time.Minute).UnixMilli()
	if err := db.Client.ZAdd(ctx, b.c.limiter.keys[1], redisZ(far, "someone")).Err(); err != nil {
		t.Fatal(err)
	}
	batch := chatRequest("batch item")
	batch.Priority = program.PriorityBatch
	_, err := b.c.Complete(ctx, batch)
	var rl *RateLimitedError
	if !errors.As(err, &rl) {
		t.Fatalf("batch call = %v, want to yield to the interactive waiter", err)
	}
	if _, err := b.c.Complete(ctx, chatRequest("interactive")); err != nil {
		t.Fatalf("interactive call: %v", err)
	}
	db.Client.Del(ctx, b.c.limiter.keys[1])
	if _, err := b.c.Complete(ctx, batch); err != nil {
		t.Fatalf("batch call with no interactive waiter: %v", err)
	}
}

func TestLimiterWaitCancelled(t *testing.T) {
	t.Parallel()
	// A limit set, so that the waiter asks the script, which registers it.
	b, _, db := twoWorkers(t, func(c *Config) { c.RPM = 1000; c.MaxWait = time.Minute })
	b.c.limiter.setCooldown(ctxT(t), 30*time.Second)
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() {
		_, err := b.c.Complete(ctx, chatRequest("waiting"))
		done <- err
	}()
	// The waiter registers itself as interactive; then we give up.
	testwait.Until(t, "the waiter to register", func() bool { return db.Client.ZCard(context.Background(), b.c.limiter.keys[1]).Val() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := db.Client.ZCard(ctxT(t), b.c.limiter.keys[1]).Val(); n != 0 {
		t.Errorf("%d waiters left registered after cancellation", n)
	}
}

func TestTPMCorrectedWithUsage(t *testing.T) {
	t.Parallel()
	// 120,000 a minute: a bucket of exactly 1,000 tokens, so that the
	// comparison below is exact.
	const tpm = 120000
	b, _, db := twoWorkers(t, func(c *Config) { c.TPM = tpm })
	comp, err := b.c.Complete(ctxT(t), chatRequest("count my tokens"))
	if err != nil {
		t.Fatal(err)
	}
	p, c := usageTokens(comp.Usage)
	left, err := db.Client.HGet(ctxT(t), b.c.limiter.keys[0], "t").Float64()
	if err != nil {
		t.Fatal(err)
	}
	if want := b.c.limiter.tcap - float64(p+c); left != want {
		t.Errorf("tokens left = %v, want %v (the estimate corrected to real usage)", left, want)
	}
}

func redisZ(score int64, member string) redis.Z {
	return redis.Z{Score: float64(score), Member: member}
}

// burst asks the limiter n times at once, as n callers of a backlog would,
// and returns how many it admitted, how long the burst took by the script's
// clock (Redis TIME) and the longest wait it told a refused caller.
func burst(t *testing.T, l *limiter, db *redistest.DB, n int, cost int64) (admitted int, took, longest time.Duration) {
	t.Helper()
	ctx := ctxT(t)
	before, err := db.Client.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		wait, _, err := l.try(ctx, program.PriorityBatch, cost, "burst"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		if wait <= 0 {
			admitted++
		}
		longest = max(longest, wait)
	}
	after, err := db.Client.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	return admitted, after.Sub(before), longest
}

// TestLimiterPacesABacklog: a backlog of 100 calls at LM_RPM=300 is let out
// at about 5 a second, not the minute's 300 at once, and a refused caller is
// told to come back within one call's interval (200 ms), not a minute.
func TestLimiterPacesABacklog(t *testing.T) {
	t.Parallel()
	const rpm = 300
	b, _, db := twoWorkers(t, func(c *Config) { c.RPM = rpm })
	admitted, took, longest := burst(t, b.c.limiter, db, 100, 1)
	// At most one second's budget, plus what the burst itself earned back.
	limit := rpm/60 + int(took.Seconds()*rpm/60) + 1
	if admitted < 1 || admitted > limit {
		t.Errorf("a burst of 100 admitted %d calls in %v, want 1..%d (one second's budget at %d/min)", admitted, took, limit, rpm)
	}
	if interval := time.Minute / rpm; longest <= 0 || longest > interval {
		t.Errorf("longest wait %v, want within one call's interval %v", longest, interval)
	}
}

// TestLimiterPacesTokens: LM_TPM alike; 100 calls of 100 tokens at 60,000
// tokens a minute (1,000 a second) admit at most one second's worth.
func TestLimiterPacesTokens(t *testing.T) {
	t.Parallel()
	const tpm, cost = 60000, 100
	b, _, db := twoWorkers(t, func(c *Config) { c.TPM = tpm })
	admitted, took, _ := burst(t, b.c.limiter, db, 100, cost)
	limit := (tpm/60+int(took.Seconds()*tpm/60))/cost + 1
	if admitted < 1 || admitted > limit {
		t.Errorf("a burst of 100 × %d tokens admitted %d calls in %v, want 1..%d", cost, admitted, took, limit)
	}
}

// TestLimiterBigCallWaitsForAFullBucket: a call larger than the token bucket
// goes out once the bucket is full rather than never, and leaves the bucket
// in debt so that the next call waits for what it overspent.
func TestLimiterBigCallWaitsForAFullBucket(t *testing.T) {
	t.Parallel()
	const tpm = 60000
	b, _, _ := twoWorkers(t, func(c *Config) { c.TPM = tpm })
	l := b.c.limiter
	big := int64(l.tcap * 3)
	if wait, _, err := l.try(ctxT(t), program.PriorityBatch, big, "big"); err != nil || wait != 0 {
		t.Fatalf("a call of %d tokens with a full bucket of %v: wait %v, %v; want admitted", big, l.tcap, wait, err)
	}
	wait, _, err := l.try(ctxT(t), program.PriorityBatch, 1, "next")
	if err != nil {
		t.Fatal(err)
	}
	// The debt is about 2 × tcap tokens: more than one bucket's refill time.
	if refill := time.Duration(l.tcap / tpm * float64(time.Minute)); wait <= refill {
		t.Errorf("next call waits %v, want more than a bucket's refill %v (the big call's debt)", wait, refill)
	}
}
