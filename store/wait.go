package store

import (
	"context"
	"fmt"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
)

// recheckEvery bounds how long a waiter trusts pub/sub alone: a job whose
// terminal event was lost (a reconnect at the wrong moment) is still noticed.
const recheckEvery = 5 * time.Second

// Wait returns job id once it has ended, or as it is when timeout passes
// (timeout ≤ 0 returns at once): OpenWait, then Follower.Wait.
func (s *Jobs) Wait(ctx context.Context, hub *Hub, id string, timeout time.Duration) (*jobs.Job, error) {
	if timeout <= 0 {
		return s.Get(ctx, id)
	}
	f, err := s.OpenWait(ctx, hub, id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Wait(ctx, timeout)
}

// OpenWait begins a wait for job id's end: it subscribes to the job's
// channel, then reads the record (Follower.Record: check it, e.g. its
// owner, before waiting). Follower.Wait then waits through the hub, never by
// polling in a loop: the record is read again once, at the end, unless a
// recheck (every few seconds) or a resync has read it already.
// ErrNotFound when there is no such job.
func (s *Jobs) OpenWait(ctx context.Context, hub *Hub, id string) (*Follower[*jobs.Job], error) {
	f, err := Follow(ctx, FollowConfig{Hub: hub, Heartbeat: recheckEvery}, s.Source(id), FromNow)
	if err != nil {
		return nil, fmt.Errorf("wait for job %s: %w", id, err)
	}
	return f, nil
}
