package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// flakyTokens makes a job's token and reset writes fail as an unreachable
// Redis would: the first refuse of them never reach Redis, and the next lose
// their reply after Redis ran them (the connection dropped mid-answer), so a
// repeat of such a write must not add a second event.
type flakyTokens struct {
	mu           sync.Mutex
	refuse, lose int
}

func (f *flakyTokens) take() (refuse, loseReply bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.refuse > 0:
		f.refuse--
		return true, false
	case f.lose > 0:
		f.lose--
		return false, true
	}
	return false, false
}

func (f *flakyTokens) left() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refuse + f.lose
}

func (f *flakyTokens) hook() redis.Hook { return flakyHook{f} }

type flakyHook struct{ f *flakyTokens }

func (flakyHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (flakyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h flakyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isStreamWrite(cmd) {
			return next(ctx, cmd)
		}
		refuse, loseReply := h.f.take()
		if refuse {
			// As redistest.RefuseScripts: a connection refused.
			err := fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)
			cmd.SetErr(err)
			return err
		}
		err := next(ctx, cmd)
		if loseReply && err == nil {
			err = fmt.Errorf("read tcp: %w", syscall.ECONNRESET)
			cmd.SetErr(err)
		}
		return err
	}
}

// isStreamWrite reports whether cmd runs the record script's token or reset
// op (its first argument after the keys).
func isStreamWrite(cmd redis.Cmder) bool {
	if n := strings.ToLower(cmd.Name()); n != "evalsha" && n != "eval" {
		return false
	}
	args := cmd.Args()
	if len(args) < 3 {
		return false
	}
	nkeys, _ := args[2].(int)
	if len(args) <= 3+nkeys {
		return false
	}
	op, _ := args[3+nkeys].(string)
	return op == "token" || op == "reset"
}

// TestCoalescerRidesOutARedisOutage: token writes refused because Redis is
// unreachable do not stop the run; what they carried goes out with a later
// flush, in order, exactly once — also when Redis ran a write whose reply
// was lost.
func TestCoalescerRidesOutARedisOutage(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx := context.Background()
	flaky := &flakyTokens{refuse: 4, lose: 3}
	faulty := redis.NewClient(db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	faulty.AddHook(flaky.hook())
	jobStore, err := store.NewJobs(faulty, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := store.NewClient(db.Client, jobStore).Submit(ctx, store.SubmitRequest{Spec: streamed("q", "o")})
	if err != nil {
		t.Fatal(err)
	}
	att, out, err := jobStore.Start(ctx, sub.Job.ID, "w", 0)
	if err != nil || out != store.Started {
		t.Fatalf("start = %v %v", out, err)
	}

	c := newCoalescer(att.StageToken, att.StageReset, time.Millisecond)
	go c.run(ctx)
	var want []string // "field:content" in the order written
	for i := range 60 {
		field := "answer"
		if i%7 == 3 {
			field = "reasoning"
		}
		chunk := fmt.Sprintf("%d ", i)
		want = append(want, field+":"+chunk)
		if err := c.add(field, chunk); err != nil {
			t.Fatalf("add %d: %v; an unreachable Redis must not stop the run", i, err)
		}
		if i == 30 {
			if err := c.addReset("fell back"); err != nil {
				t.Fatalf("reset: %v", err)
			}
			want = append(want, "reset:fell back")
		}
		if i%10 == 0 {
			// Let the publisher catch up now and then, so writes fail
			// both alone and with chunks queued behind them.
			testwait.Until(t, "a flush", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pending) == 0 })
		}
	}
	if err := c.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if n := flaky.left(); n != 0 {
		t.Fatalf("%d injected failures were never hit", n)
	}

	evs, err := jobStore.Events(ctx, sub.Job.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string // the same, with consecutive chunks of a field joined
	for _, e := range evs {
		switch e.Type {
		case jobs.EventToken:
			var d jobs.TokenData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			got = append(got, d.Field+":"+d.Content)
		case jobs.EventRetrying:
			var d jobs.RetryingData
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			got = append(got, "reset:"+d.Reason)
		}
	}
	if g, w := joinRuns(got), joinRuns(want); g != w {
		t.Fatalf("streamed:\n%s\nwant:\n%s", g, w)
	}
}

// joinRuns renders field:content entries with consecutive entries of one
// field merged, as the coalescer may merge them.
func joinRuns(entries []string) string {
	var b strings.Builder
	last := ""
	for _, e := range entries {
		field, content, _ := strings.Cut(e, ":")
		if field != last || field == "reset" {
			b.WriteString("\n" + field + ": ")
			last = field
		}
		b.WriteString(content)
	}
	return b.String()
}

// TestCoalescerStopsWhenTheJobEnds: a write refused because the job ended
// (cancelled) still stops the run.
func TestCoalescerStopsWhenTheJobEnds(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx := context.Background()
	jobStore, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	client := store.NewClient(db.Client, jobStore)
	sub, err := client.Submit(ctx, store.SubmitRequest{Spec: streamed("q", "o")})
	if err != nil {
		t.Fatal(err)
	}
	att, _, err := jobStore.Start(ctx, sub.Job.ID, "w", 0)
	if err != nil {
		t.Fatal(err)
	}
	c := newCoalescer(att.StageToken, att.StageReset, time.Millisecond)
	go c.run(ctx)
	if _, err := client.Cancel(ctx, sub.Job.ID); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "add to report the cancel", func() bool { return errors.Is(c.add("answer", "x"), store.ErrTerminal) })
	if err := c.close(); !errors.Is(err, store.ErrTerminal) {
		t.Fatalf("close = %v, want ErrTerminal", err)
	}
}

// The tests below drive the coalescer alone, against a recording sink, in a
// synctest bubble: its clock is fake and moves only when every goroutine
// waits, so "nothing was written before the interval ended" is exact and no
// test waits on the wall clock. (time.Sleep in a bubble advances that fake
// clock at once.)

// sinkLog records a coalescer's writes in order, "field:content" for a
// token and "reset:reason" for a reset, including writes that failed; fail,
// if set, gives the error of the n-th write (from 0).
type sinkLog struct {
	mu    sync.Mutex
	calls []string
	fail  func(n int, call string) error
}

func (s *sinkLog) write(call string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.fail != nil {
		err = s.fail(len(s.calls), call)
	}
	s.calls = append(s.calls, call)
	return err
}

func (s *sinkLog) token(_ context.Context, stage, field, content string) error {
	return s.write(staged(stage, field+":"+content))
}

func (s *sinkLog) reset(_ context.Context, stage, reason string) error {
	return s.write(staged(stage, "reset:"+reason))
}

// staged prefixes a write of a multi-stage program's stage with "stage/".
func staged(stage, call string) string {
	if stage == "" {
		return call
	}
	return stage + "/" + call
}

// A multi-stage run's chunks and resets are published under the stage that
// made them, so a reset drops that stage's text alone; sync publishes what
// is queued at once, whatever the interval, so a stage's text goes out
// before its stage_completed.
func TestCoalescerStagesAndSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sinkLog{}
		c := startCoalescer(t, s, time.Hour)
		c.setStage("extract")
		mustAdd(t, c, "reasoning", "a")
		synctest.Wait()
		mustAdd(t, c, "reasoning", "b") // held for the interval
		synctest.Wait()
		s.expect(t, "before sync", "extract/reasoning:a")
		if err := c.sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.expect(t, "after sync", "extract/reasoning:a", "extract/reasoning:b")
		c.setStage("verify")
		mustAdd(t, c, "reasoning", "c")
		if err := c.addReset("fell back"); err != nil {
			t.Fatal(err)
		}
		if err := c.close(); err != nil {
			t.Fatal(err)
		}
		s.expect(t, "after close", "extract/reasoning:a", "extract/reasoning:b", "verify/reasoning:c", "verify/reset:fell back")
	})
}

// expect fails the test unless the writes so far are want. Call it after
// synctest.Wait, when the publisher is idle.
func (s *sinkLog) expect(t *testing.T, when string, want ...string) {
	t.Helper()
	s.mu.Lock()
	got := slices.Clone(s.calls)
	s.mu.Unlock()
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("%s: writes (-want +got):\n%s", when, diff)
	}
}

// startCoalescer runs a coalescer publishing to s, in t's bubble.
func startCoalescer(t *testing.T, s *sinkLog, every time.Duration) *coalescer {
	c := newCoalescer(s.token, s.reset, every)
	runCoalescer(t, c)
	return c
}

// runCoalescer starts c's publisher; a test that failed before closing c
// has it closed, so the bubble ends with its goroutines.
func runCoalescer(t *testing.T, c *coalescer) {
	go c.run(context.Background())
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.close()
		}
	})
}

func mustAdd(t *testing.T, c *coalescer, field, content string) {
	t.Helper()
	if err := c.add(field, content); err != nil {
		t.Fatalf("add %s %q: %v", field, content, err)
	}
}

// errRefused is a write that never reached Redis.
var errRefused = fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)

// TestCoalescerPacesWrites: a field's first chunk goes out at once (time to
// first token); later chunks wait for the interval and go out together, one
// write per run of a field, in the order they came.
func TestCoalescerPacesWrites(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const every = time.Second
		var s sinkLog
		c := startCoalescer(t, &s, every)
		start := time.Now()

		mustAdd(t, c, "reasoning", "r1")
		synctest.Wait()
		s.expect(t, "a field's first chunk", "reasoning:r1")

		mustAdd(t, c, "reasoning", "r2")
		mustAdd(t, c, "reasoning", "r3")
		synctest.Wait()
		s.expect(t, "later chunks, within the interval", "reasoning:r1")

		// Another field's first chunk goes at once, after what was queued
		// before it.
		mustAdd(t, c, "answer", "a1")
		synctest.Wait()
		s.expect(t, "the next field's first chunk", "reasoning:r1", "reasoning:r2r3", "answer:a1")
		if d := time.Since(start); d != 0 {
			t.Fatalf("first chunks went out after %v, want at once", d)
		}

		mustAdd(t, c, "answer", "a2")
		mustAdd(t, c, "answer", "a3")
		mustAdd(t, c, "reasoning", "r4")
		mustAdd(t, c, "answer", "a4")
		time.Sleep(every - time.Nanosecond)
		synctest.Wait()
		s.expect(t, "just before the interval ends", "reasoning:r1", "reasoning:r2r3", "answer:a1")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		s.expect(t, "when the interval ends",
			"reasoning:r1", "reasoning:r2r3", "answer:a1", "answer:a2a3", "reasoning:r4", "answer:a4")

		if err := c.close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		s.expect(t, "after close",
			"reasoning:r1", "reasoning:r2r3", "answer:a1", "answer:a2a3", "reasoning:r4", "answer:a4")
	})
}

// TestCoalescerOrdersResets: a reset goes out after every chunk queued before
// it, at once; chunks after it start a new write, and a field's first chunk
// after it goes at once again.
func TestCoalescerOrdersResets(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var s sinkLog
		c := newCoalescer(s.token, s.reset, time.Hour)
		// Queued before the publisher runs: all of it goes in one flush.
		mustAdd(t, c, "answer", "a1")
		mustAdd(t, c, "answer", "a2")
		mustAdd(t, c, "reasoning", "x")
		if err := c.addReset("fell back"); err != nil {
			t.Fatal(err)
		}
		mustAdd(t, c, "reasoning", "y")
		mustAdd(t, c, "reasoning", "z")
		runCoalescer(t, c)
		synctest.Wait()
		want := []string{"answer:a1a2", "reasoning:x", "reset:fell back", "reasoning:yz"}
		s.expect(t, "the first flush", want...)

		mustAdd(t, c, "reasoning", "w") // not a first chunk: waits
		synctest.Wait()
		s.expect(t, "a later chunk", want...)
		if err := c.addReset("again"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		want = append(want, "reasoning:w", "reset:again")
		s.expect(t, "a reset", want...)
		mustAdd(t, c, "reasoning", "v") // first since the reset: at once
		synctest.Wait()
		want = append(want, "reasoning:v")
		s.expect(t, "the first chunk after a reset", want...)

		if err := c.close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		s.expect(t, "after close", want...)
	})
}

// TestCoalescerCloseFlushesTheRest: close writes what is queued without
// waiting out the interval.
func TestCoalescerCloseFlushesTheRest(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var s sinkLog
		c := startCoalescer(t, &s, time.Hour)
		start := time.Now()
		mustAdd(t, c, "answer", "a1")
		synctest.Wait()
		mustAdd(t, c, "answer", "a2")
		mustAdd(t, c, "answer", "a3")
		if err := c.close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		s.expect(t, "after close", "answer:a1", "answer:a2a3")
		if d := time.Since(start); d != 0 {
			t.Fatalf("close took %v, want no wait", d)
		}

		var none sinkLog
		if err := startCoalescer(t, &none, time.Hour).close(); err != nil {
			t.Fatalf("close of an idle coalescer: %v", err)
		}
		none.expect(t, "an idle coalescer")
	})
}

// TestCoalescerStopsAtAWriteError: a write refused for a reason other than
// Redis being away (the job ended, the attempt is stale) stops publishing;
// add, addReset and close return that error from then on.
func TestCoalescerStopsAtAWriteError(t *testing.T) {
	t.Parallel()
	for _, refused := range []string{"answer:a2", "reset:fell back"} {
		t.Run(refused, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := sinkLog{fail: func(_ int, call string) error {
					if call == refused {
						return fmt.Errorf("write: %w", store.ErrTerminal)
					}
					return nil
				}}
				c := startCoalescer(t, &s, time.Second)
				mustAdd(t, c, "answer", "a1")
				synctest.Wait()
				mustAdd(t, c, "answer", "a2")
				if err := c.addReset("fell back"); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				want := []string{"answer:a1", "answer:a2"}
				if refused == "reset:fell back" {
					want = append(want, "reset:fell back")
				}
				s.expect(t, "up to the refused write", want...)

				if err := c.add("answer", "a3"); !errors.Is(err, store.ErrTerminal) {
					t.Errorf("add after the refusal = %v, want ErrTerminal", err)
				}
				if err := c.addReset("again"); !errors.Is(err, store.ErrTerminal) {
					t.Errorf("addReset after the refusal = %v, want ErrTerminal", err)
				}
				time.Sleep(time.Hour)
				synctest.Wait()
				if err := c.close(); !errors.Is(err, store.ErrTerminal) {
					t.Errorf("close = %v, want ErrTerminal", err)
				}
				s.expect(t, "after the refusal (nothing more)", want...)
			})
		})
	}
}

// TestCoalescerRepeatsARefusedWrite: while Redis is away, a refused write
// stays queued ahead of newer chunks and is repeated exactly as it was (it
// may have landed, and the attempt numbers its writes so a repeat is not
// published twice); newer chunks do not join it, and the publisher backs off
// instead of writing at each first chunk.
func TestCoalescerRepeatsARefusedWrite(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const every = time.Second
		s := sinkLog{fail: func(n int, _ string) error {
			if n < 2 {
				return errRefused
			}
			return nil
		}}
		c := startCoalescer(t, &s, every)
		mustAdd(t, c, "answer", "a1")
		synctest.Wait()
		s.expect(t, "the refused write", "answer:a1")
		mustAdd(t, c, "answer", "a2")
		mustAdd(t, c, "reasoning", "r1") // a first chunk, but Redis is away
		synctest.Wait()
		s.expect(t, "while backing off", "answer:a1")

		time.Sleep(every)
		synctest.Wait()
		s.expect(t, "the second try, refused again", "answer:a1", "answer:a1")
		time.Sleep(every)
		synctest.Wait()
		s.expect(t, "once Redis is back", "answer:a1", "answer:a1", "answer:a1", "answer:a2", "reasoning:r1")

		if err := c.close(); err != nil {
			t.Fatalf("close: %v; an outage that ended must not stop the run", err)
		}
	})
}

// TestCoalescerCloseGivesUpWhenRedisStaysAway: close waits out an outage as
// the attempt's end write does (writePatience), then returns its error.
func TestCoalescerCloseGivesUpWhenRedisStaysAway(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := sinkLog{fail: func(int, string) error { return errRefused }}
		c := startCoalescer(t, &s, time.Second)
		start := time.Now()
		if err := c.add("answer", "a1"); err != nil {
			t.Fatalf("add: %v; an unreachable Redis must not stop the run", err)
		}
		synctest.Wait()
		if err := c.close(); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("close = %v, want the refused write's error", err)
		}
		if d := time.Since(start); d < writePatience {
			t.Fatalf("close gave up after %v, want writePatience (%v)", d, writePatience)
		}
	})
}

// streamed is the spec of owner's question q, streamed.
func streamed(q, owner string) jobs.Spec {
	s := jobs.Spec{ClientSpec: jobs.QuestionSpec(q), ServerSpec: jobs.ServerSpec{Owner: owner}}
	s.Options.Stream = true
	return s
}

// TestCoalescerCloseHoldingKeepsTheRest: a run that has its result hands
// what is left unsent to the end write (closeHolding) instead of writing
// it; a write that may have landed (refused, so sealed) is still repeated
// first, by itself.
func TestCoalescerCloseHoldingKeepsTheRest(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var s sinkLog
		c := startCoalescer(t, &s, time.Hour)
		mustAdd(t, c, "answer", "a1")
		synctest.Wait()
		mustAdd(t, c, "answer", "a2")
		mustAdd(t, c, "answer", "a3")
		if err := c.addReset("fell back"); err != nil {
			t.Fatal(err)
		}
		rest, err := c.closeHolding()
		if err != nil {
			t.Fatalf("closeHolding: %v", err)
		}
		// The reset is urgent: the publisher may have woken and written
		// the queued pieces before closeHolding took them. Either way each
		// goes out once, in order: written, then held.
		s.mu.Lock()
		got := slices.Clone(s.calls)
		s.mu.Unlock()
		for _, p := range rest {
			if p.Field == "" {
				got = append(got, "reset:"+p.Content)
			} else {
				got = append(got, p.Field+":"+p.Content)
			}
		}
		if diff := cmp.Diff([]string{"answer:a1", "answer:a2a3", "reset:fell back"}, got); diff != "" {
			t.Errorf("written then held (-want +got):\n%s", diff)
		}

		refused := sinkLog{fail: func(n int, _ string) error {
			if n == 1 {
				return errRefused
			}
			return nil
		}}
		c = startCoalescer(t, &refused, time.Second)
		mustAdd(t, c, "answer", "a1")
		synctest.Wait()
		mustAdd(t, c, "answer", "a2")
		time.Sleep(time.Second)
		synctest.Wait() // a2's write refused: sealed, to be repeated
		mustAdd(t, c, "answer", "a3")
		rest, err = c.closeHolding()
		if err != nil {
			t.Fatalf("closeHolding after an outage: %v", err)
		}
		refused.expect(t, "after closeHolding", "answer:a1", "answer:a2", "answer:a2")
		if diff := cmp.Diff([]store.Piece{{Field: "answer", Content: "a3"}}, rest); diff != "" {
			t.Errorf("held pieces after an outage (-want +got):\n%s", diff)
		}
	})
}

// TestCoalescerEndBeatsAPendingWake: a run whose whole answer arrives at
// once (a burst after the first token, as under load) has signalled the
// publisher with its first chunk; when the run ends before the publisher
// wakes, the pieces go with the end write and no token write is made. Go's
// select picks at random among ready cases, so the end must be checked
// first, not raced: the loop makes a race lose with certainty.
func TestCoalescerEndBeatsAPendingWake(t *testing.T) {
	t.Parallel()
	for i := range 64 {
		var s sinkLog
		c := newCoalescer(s.token, s.reset, time.Hour)
		mustAdd(t, c, "answer", "a1") // first chunk: wakes the publisher at once
		mustAdd(t, c, "answer", "a2")
		type held struct {
			rest []store.Piece
			err  error
		}
		res := make(chan held, 1)
		go func() {
			rest, err := c.closeHolding()
			res <- held{rest, err}
		}()
		<-c.done // the run has ended; only now does the publisher run
		go c.run(context.Background())
		h := <-res
		if h.err != nil {
			t.Fatalf("round %d: closeHolding: %v", i, h.err)
		}
		s.expect(t, fmt.Sprintf("round %d", i))
		if diff := cmp.Diff([]store.Piece{{Field: "answer", Content: "a1a2"}}, h.rest); diff != "" {
			t.Fatalf("round %d: held pieces (-want +got):\n%s", i, diff)
		}
	}
}
