package jobs

import (
	"context"
	"fmt"
	"time"
)

// recheckEvery bounds how long a waiter trusts pub/sub alone: a job whose
// terminal event was lost (a reconnect at the wrong moment) is still noticed.
const recheckEvery = 5 * time.Second

// Wait returns job id once it has ended, or as it is when timeout passes
// (timeout ≤ 0 returns at once). It waits on the job's pub/sub channel through
// hub, never by polling in a loop.
func (s *Store) Wait(ctx context.Context, hub *Hub, id string, timeout time.Duration) (*Job, error) {
	j, err := s.Get(ctx, id)
	if err != nil || j.Status.Terminal() || timeout <= 0 {
		return j, err
	}
	sub, err := hub.Subscribe(ctx, Channel(id))
	if err != nil {
		return nil, fmt.Errorf("wait for job %s: %w", id, err)
	}
	defer sub.Close()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recheck := time.NewTicker(recheckEvery)
	defer recheck.Stop()
	for {
		// Read after subscribing: an end that came between the first read and
		// the subscription is seen here.
		j, err = s.Get(ctx, id)
		if err != nil || j.Status.Terminal() {
			return j, err
		}
		select {
		case ev, ok := <-sub.C():
			if !ok {
				// Dropped (hub closing): answer with what we know.
				return j, nil
			}
			if !ev.Type.Terminal() {
				// Drain without a read per token: only a terminal event
				// (or a resync) needs the record again.
				if err := skipToTerminal(ctx, sub, deadline.C, recheck.C); err != nil {
					return s.Get(ctx, id)
				}
			}
		case <-sub.Resync():
		case <-recheck.C:
		case <-deadline.C:
			return s.Get(ctx, id)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// errStop ends skipToTerminal when the caller should answer now.
var errStop = fmt.Errorf("stop waiting")

// skipToTerminal consumes events until a terminal one, a resync or a recheck
// (nil: re-read the record), or the deadline or ctx (errStop).
func skipToTerminal(ctx context.Context, sub *Subscription, deadline, recheck <-chan time.Time) error {
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok || ev.Type.Terminal() {
				return nil
			}
		case <-sub.Resync():
			return nil
		case <-recheck:
			return nil
		case <-deadline:
			return errStop
		case <-ctx.Done():
			return errStop
		}
	}
}
