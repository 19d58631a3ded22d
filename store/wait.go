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
// polling in a loop: a job that completes is answered from its completed
// event, which carries the record's end; another end (failed, cancelled,
// expired) reads the record again once, unless a recheck (every few
// seconds) or a resync has read it already.
// ErrNotFound when there is no such job.
func (s *Jobs) OpenWait(ctx context.Context, hub *Hub, id string) (*Follower[*jobs.Job], error) {
	f, err := Follow(ctx, waitConfig(hub), s.Source(id), FromNow)
	if err != nil {
		return nil, fmt.Errorf("wait for job %s: %w", id, err)
	}
	return f, nil
}

func waitConfig(hub *Hub) FollowConfig {
	return FollowConfig{Hub: hub, Heartbeat: recheckEvery, EndsOnly: true}
}

// SubmitWait submits like Submit and begins a wait for the job's end, as
// OpenWait does, for a client that submits and waits in one request. It
// subscribes to the job's channel before the job exists, so no event can be
// missed, and the record is the one Submit wrote, not read back: a job that
// completes is answered from its completed event without a read (one read
// fewer than Submit and OpenWait). A replay (Submitted.Replayed) waits for the job it names
// (OpenWait) unless it has ended: then, or when that wait cannot begin (the
// error says why), the Follower is nil and Submitted.Job is the answer.
// Close the Follower when done.
func (c *Client) SubmitWait(ctx context.Context, hub *Hub, req SubmitRequest) (*Submitted, *Follower[*jobs.Job], error) {
	id := jobs.NewJobID()
	f, err := subscribe(ctx, waitConfig(hub), c.store.Source(id), FromNow)
	if err != nil {
		return nil, nil, fmt.Errorf("submit job: %w", err)
	}
	sub, err := c.submit(ctx, req, id)
	switch {
	case err != nil:
		f.Close()
		return nil, nil, err
	case sub.Replayed:
		f.Close()
		if sub.Job.Status.Terminal() {
			return sub, nil, nil
		}
		f, err = c.store.OpenWait(ctx, hub, sub.Job.ID)
		if err != nil {
			return sub, nil, err
		}
		return sub, f, nil
	}
	f.record = sub.Job
	f.startBeat()
	return sub, f, nil
}
