package store

import (
	"context"
	"fmt"
	"github.com/qaqueue/qaqueue/jobs"
	"time"
)

// recheckEvery bounds how long a waiter trusts pub/sub alone: a job whose
// terminal event was lost (a reconnect at the wrong moment) is still noticed.
const recheckEvery = 5 * time.Second

// Wait returns job id once it has ended, or as it is when timeout passes
// (timeout ≤ 0 returns at once). It waits on the job's pub/sub channel through
// hub, never by polling in a loop: the record is read once subscribed, then
// again only on a terminal event, a resync, or the periodic recheck. Callers
// have just submitted or read the job, so it subscribes before the first read
// (one round trip less per wait than checking first).
func (s *Jobs) Wait(ctx context.Context, hub *Hub, id string, timeout time.Duration) (*jobs.Job, error) {
	if timeout <= 0 {
		return s.Get(ctx, id)
	}
	sub, err := hub.Subscribe(ctx, jobs.Channel(id))
	if err != nil {
		return nil, fmt.Errorf("wait for job %s: %w", id, err)
	}
	defer sub.Close()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recheck := time.NewTicker(recheckEvery)
	defer recheck.Stop()
	for {
		// Read after subscribing: an end that came before the subscription is
		// seen here.
		j, err := s.Get(ctx, id)
		if err != nil || j.Status.Terminal() {
			return j, err
		}
	wait:
		for {
			select {
			case ev, ok := <-sub.C():
				if !ok {
					return j, nil // dropped (hub closing): answer with what we know
				}
				if ev.Type.Terminal() {
					break wait
				}
			case <-sub.Resync():
				break wait
			case <-recheck.C:
				break wait
			case <-deadline.C:
				return s.Get(ctx, id)
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
}
