package testwait

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the run if a goroutine outlives the tests: every test stops
// what it started. No library here leaves one behind, so nothing is ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a testing.TB whose Fatalf records the message and stops the
// goroutine, as testing.T's does.
type recorder struct {
	testing.TB
	failure string
}

func (*recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// wait runs Within on a goroutine of its own, so a Fatalf ends only it, and
// returns what it recorded.
func wait(d time.Duration, what string, cond func(*recorder) bool) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Within(r, d, what, func() bool { return cond(r) })
	}()
	<-done
	return r
}

// The tests run in a synctest bubble: its clock is fake and moves only when
// every goroutine waits, so the pauses between checks are exact.

// TestUntilPollsWithBackoff: the first check is at once, the pauses double
// from a millisecond up to maxPause, and the wait returns at the first check
// that holds.
func TestUntilPollsWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var at []time.Duration
		start := time.Now()
		r := wait(Patience, "the tenth check", func(*recorder) bool {
			at = append(at, time.Since(start))
			return len(at) == 10
		})
		if r.failure != "" {
			t.Fatalf("failed: %s", r.failure)
		}
		var pauses []time.Duration
		for i := 1; i < len(at); i++ {
			pauses = append(pauses, at[i]-at[i-1])
		}
		ms := time.Millisecond
		want := []time.Duration{ms, 2 * ms, 4 * ms, 8 * ms, 16 * ms, maxPause, maxPause, maxPause, maxPause}
		if at[0] != 0 || fmt.Sprint(pauses) != fmt.Sprint(want) {
			t.Errorf("first check at %v, pauses %v; want at once, then %v", at[0], pauses, want)
		}
	})
}

// TestWithinFailsSayingWhatAndHowLong: a condition that never holds fails the
// test once the deadline has passed, naming what it waited for and for how
// long.
func TestWithinFailsSayingWhatAndHowLong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := wait(time.Minute, "the replica to catch up", func(*recorder) bool { return false })
		waited, ok := strings.CutPrefix(r.failure, "gave up waiting for the replica to catch up after ")
		if !ok {
			t.Fatalf("failure = %q", r.failure)
		}
		d, err := time.ParseDuration(waited)
		if err != nil || d < time.Minute || d > time.Minute+maxPause {
			t.Errorf("failure says it waited %q, want the minute (and at most one pause more)", waited)
		}
	})
}

// TestCondMayStopTheTest: cond runs on the caller's goroutine, so its own
// Fatal ends the wait there and then, with no check after it.
func TestCondMayStopTheTest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		r := wait(Patience, "a process to answer", func(r *recorder) bool {
			calls++
			if calls == 2 {
				r.Fatalf("the process exited")
			}
			return false
		})
		if r.failure != "the process exited" || calls != 2 {
			t.Errorf("failure %q after %d calls; want the cond's own, after 2", r.failure, calls)
		}
	})
}
