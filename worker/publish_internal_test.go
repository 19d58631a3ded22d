package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
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
	sub, err := store.NewClient(db.Client, jobStore).Submit(ctx, store.SubmitRequest{Question: "q", Stream: true, Owner: "o"})
	if err != nil {
		t.Fatal(err)
	}
	att, out, err := jobStore.Start(ctx, sub.Job.ID, "w", 0)
	if err != nil || out != store.Started {
		t.Fatalf("start = %v %v", out, err)
	}

	c := newCoalescer(att.Token, att.Reset, time.Millisecond)
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
			waitFor(t, "a flush", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pending) == 0 })
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
	sub, err := client.Submit(ctx, store.SubmitRequest{Question: "q", Stream: true, Owner: "o"})
	if err != nil {
		t.Fatal(err)
	}
	att, _, err := jobStore.Start(ctx, sub.Job.ID, "w", 0)
	if err != nil {
		t.Fatal(err)
	}
	c := newCoalescer(att.Token, att.Reset, time.Millisecond)
	go c.run(ctx)
	if _, err := client.Cancel(ctx, sub.Job.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "add to report the cancel", func() bool { return errors.Is(c.add("answer", "x"), store.ErrTerminal) })
	if err := c.close(); !errors.Is(err, store.ErrTerminal) {
		t.Fatalf("close = %v, want ErrTerminal", err)
	}
}

// waitFor polls cond with a generous deadline (not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
