// Package testwait is how tests wait for something that happens in the
// background: poll a condition until it holds, and fail the test, saying what
// it waited for and for how long, if a generous deadline passes first. The
// deadline is a hang guard, never a timing assertion: tests run on two shared,
// loaded cores, so nothing here measures speed.
//
// It is a package of its own, not part of redistest, because waiting has
// nothing to do with Redis: lmclient's and cmd/qa's tests wait on HTTP
// servers and processes, and should not link go-redis and miniredis to get a
// loop. It imports only the standard library, and only tests import it.
//
// It is written here rather than taken from testify's assert.Eventually,
// which calls the condition on a goroutine of its own: a condition cannot
// stop the test (t.Fatal must run on the test's goroutine), and one still
// running at the deadline outlives the wait, racing the test and tripping
// goleak (stretchr/testify#1611, open).
package testwait

import (
	"testing"
	"time"
)

// Patience is how long Until waits: far longer than anything that works
// takes on a loaded machine, so only a hang reaches it.
const Patience = 60 * time.Second

// The pause between checks starts at firstPause, so what is nearly done is
// seen at once, and doubles up to maxPause, so a long wait costs little CPU.
const (
	firstPause = time.Millisecond
	maxPause   = 20 * time.Millisecond
)

// Until calls cond until it returns true, and fails tb if Patience passes
// first. what names the awaited state for the failure message ("job 3 to
// end"). cond runs on the caller's goroutine, one call at a time, so it may
// read test state freely and call tb.Fatal itself (say, when a process it
// waits on has exited).
func Until(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	Within(tb, Patience, what, cond)
}

// Within is Until with the deadline d, for the waits whose bound the test
// knows better than Patience: fault tests waiting on processes that have
// their own timeouts, or a wait that must end inside a test's context.
func Within(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	start := time.Now()
	pause := firstPause
	for !cond() {
		if waited := time.Since(start); waited >= d {
			tb.Fatalf("gave up waiting for %s after %v", what, waited.Round(time.Millisecond))
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPause)
	}
}
