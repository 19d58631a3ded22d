package lmclient

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// noID is what log.Take elides: nothing, as these commands carry no id.
const noID = "\x00"

// notHandshake keeps what a CommandLog records to commands, leaving out
// those go-redis sends on each new connection.
func notHandshake(name, _ string) bool {
	switch name {
	case "hello", "select", "client", "auth":
		return false
	}
	return true
}

// followed waits for the limiters of clients, which share one key, to read
// the cool-down once at start each (the PTTL each sends once subscribed to
// the cool-down channel), and returns what log recorded, then empty. The
// reads are counted together: one Take may hold several clients'.
func followed(t *testing.T, log *redistest.CommandLog, clients ...*Client) []string {
	t.Helper()
	want := "pttl " + clients[0].limiter.keys[2]
	var got []string
	testwait.Until(t, "the limiters' start reads of the cool-down", func() bool {
		got = append(got, log.Take(noID)...)
		n := 0
		for _, c := range got {
			if c == want {
				n++
			}
		}
		return n >= len(clients)
	})
	return got
}

// TestNoLimitSendsRedisNothing: with LM_RPM and LM_TPM unset, an LM call
// costs Redis nothing; only the start read of the cool-down is sent.
func TestNoLimitSendsRedisNothing(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	log := &redistest.CommandLog{Keep: notHandshake}
	db.Client.AddHook(log)
	b := setup(t, withRedis(db))
	if got := followed(t, log, b.c); len(got) != 1 {
		t.Errorf("at start the limiter sent %q, want one PTTL", got)
	}
	const n = 5
	for i := range n {
		if _, err := b.c.Complete(ctxT(t), chatRequest("free "+strconv.Itoa(i))); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got := log.Take(noID); len(got) != 0 {
		t.Errorf("%d calls with no limit sent Redis %d commands: %s", n, len(got), strings.Join(got, ", "))
	}
	if calls(b) != n {
		t.Errorf("LM calls = %d, want %d", calls(b), n)
	}
}

// TestCooldownMirrored: a 429 with Retry-After seen by one process holds
// another that has no limit set, through the cool-down channel, and one
// started during the cool-down reads it at start.
func TestCooldownMirrored(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	log := &redistest.CommandLog{Keep: notHandshake}
	db.Client.AddHook(log)
	b := setup(t, withRedis(db), func(c *Config, _ *Deps) { c.MaxWait = 100 * time.Millisecond })
	other := newClient(t, b.cfg, Deps{Redis: db.Client})
	followed(t, log, b.c, other)
	b.srv.FailNext(1, fakelm.Status429(30*time.Second))
	_, err := b.c.Complete(ctxT(t), chatRequest("throttled"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 429 {
		t.Fatalf("first call = %v, want the 429", err)
	}
	testwait.Until(t, "the other process to mirror the cool-down", func() bool { return other.limiter.cooldownLeft() > 0 })
	late := newClient(t, b.cfg, Deps{Redis: db.Client})
	testwait.Until(t, "a process started during the cool-down to read it", func() bool { return late.limiter.cooldownLeft() > 0 })
	for name, c := range map[string]*Client{"the other process": other, "one started later": late} {
		_, err = c.Complete(ctxT(t), chatRequest("another"))
		var rl *RateLimitedError
		if !errors.As(err, &rl) || !rl.Cooldown || rl.Delay < 20*time.Second {
			t.Errorf("%s = %v, want the shared cool-down", name, err)
		}
	}
	if calls(b) != 1 {
		t.Errorf("LM calls = %d: the cool-down did not hold the other processes", calls(b))
	}
}
