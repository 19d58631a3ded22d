package redistest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/qaqueue/qaqueue/internal/testwait"
)

// Published collects what Redis publishes on the channels matching a
// pattern, by channel: a test subscribes by pattern since the id in a
// channel's name (a job's, a batch's) is not known before the publish.
type Published struct {
	mu   sync.Mutex
	msgs map[string][]string
}

// Listen subscribes to pattern on db until the test ends and collects what
// is published there.
func Listen(t *testing.T, db *DB, pattern string) *Published {
	t.Helper()
	ctx := context.Background()
	ps := db.Client.PSubscribe(ctx, pattern)
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatalf("subscribe to %s: %v", pattern, err)
	}
	t.Cleanup(func() { _ = ps.Close() })
	p := &Published{msgs: map[string][]string{}}
	go func() {
		for m := range ps.Channel() {
			p.mu.Lock()
			p.msgs[m.Channel] = append(p.msgs[m.Channel], m.Payload)
			p.mu.Unlock()
		}
	}()
	return p
}

// Wait returns what channel carried once it is at least n messages.
func (p *Published) Wait(t *testing.T, channel string, n int) []string {
	t.Helper()
	var got []string
	defer func() { // on the way out of a failed wait: what did come
		if len(got) < n {
			t.Logf("%s carried %q", channel, got)
		}
	}()
	testwait.Until(t, fmt.Sprintf("%d messages on %s", n, channel), func() bool {
		p.mu.Lock()
		got = append([]string(nil), p.msgs[channel]...)
		p.mu.Unlock()
		return len(got) >= n
	})
	return got
}
