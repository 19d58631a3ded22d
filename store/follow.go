package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/rs/zerolog"
)

// Following a job or a batch: its events from Redis to one reader (an event
// stream, a long poll, a results download). A follow subscribes through the
// process's shared hub first (returning once Redis confirmed), then reads
// the record and replays the stream after the reader's resume id, then
// relays live events with greater ids only — no gap, no duplicate. After a
// pub/sub reconnect (Resync) it re-reads the stream after the last id it
// sent; at each heartbeat it re-checks the record, so a job that ended
// without a deliverable event still ends the follow. It ends at a terminal
// event.

// FromNow, as Follow's resume id, follows the events from the subscription
// on: nothing is replayed, and events lost to a pub/sub reconnect are not
// re-read either; the sink gets the record instead (Sink.Snapshot). For a
// reader that needs the state, not each event: a long poll, a results
// download.
const FromNow = "$"

// Source is what a follow follows: a job (Jobs.Source) or a batch (package
// batches has its own). R is its record.
type Source[R any] interface {
	// Channel is the pub/sub channel the events are published on.
	Channel() string
	// Stream is the capped stream that holds them.
	Stream() Stream
	// Load reads the record; ErrNotFound when it is gone.
	Load(ctx context.Context) (R, error)
	// Ended reports whether the record has ended.
	Ended(r R) bool
}

// endedBy is a Source whose terminal event may carry how its record ended
// (a job's completed event does: jobs.Event.Ended).
type endedBy[R any] interface {
	// EndedBy is r, the record as read before, as ev ended it; false when ev
	// does not say.
	EndedBy(r R, ev jobs.Event) (R, bool)
}

// Sink renders a follow's output for one kind of reader.
type Sink[R any] interface {
	// Event sends one event; ErrStop ends the follow as finished.
	Event(ev jobs.Event) error
	// Snapshot sends the record in place of events the reader cannot get
	// (a trimmed resume id, an end without a terminal event, events lost
	// by a FromNow follow); id is the stream position it stands for. ErrStop
	// ends the follow as finished.
	Snapshot(r R, id string) error
	Heartbeat() error
	// Hold keeps what is written next in the buffer until Flush, so that a
	// burst of events goes out in one write.
	Hold()
	Flush() error
	// Reconnect tells the reader to come back (shutdown, or the hub
	// closed); last is the last id sent.
	Reconnect(last string) error
}

// ErrStop is returned by a sink that has what it needs (it sent its final
// frame): the follow ends as finished.
var ErrStop = errors.New("follow finished")

// FollowEnd says why a follow's Run ended.
type FollowEnd int

// How a Run ends.
const (
	// EndFinished: the source ended and the sink has been told, or the sink
	// stopped it (ErrStop), or the reader went (the error says).
	EndFinished FollowEnd = iota
	// EndGone: the source was deleted or expired.
	EndGone
	// EndSlow: the hub dropped the reader: it fell behind.
	EndSlow
	// EndReconnect: shutdown or the hub closed; the sink's Reconnect was
	// called.
	EndReconnect
	// EndTimeout: the caller's timeout passed.
	EndTimeout
)

// FollowConfig is what the follows of a process share.
type FollowConfig struct {
	// Hub is the process's shared pub/sub connection.
	Hub *Hub
	// Timeout bounds the subscription and each Redis read; 0: only the
	// caller's context does.
	Timeout time.Duration
	// Heartbeat is how often the sink's Heartbeat runs and the record is
	// re-read; 0: never.
	Heartbeat time.Duration
	// Stop, closed at shutdown, ends every Run with EndReconnect. Nil:
	// never.
	Stop <-chan struct{}
	// EndsOnly: the sink needs the source's end only, not each event (a
	// wait following from now, which re-reads the record for anything it
	// missed), so the subscription gets terminal events only
	// (Hub.SubscribeEnds).
	EndsOnly bool
}

// bound is ctx bounded by Timeout, if set; else ctx itself, which costs
// nothing (a wait's follow has no Timeout: its caller bounds it).
func (c FollowConfig) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.Timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.Timeout)
}

// Follower is a follow that has subscribed and read what precedes the live
// events; Run writes everything. It is not safe for concurrent use.
type Follower[R any] struct {
	cfg  FollowConfig
	src  Source[R]
	sub  *Subscription
	beat *time.Ticker
	// live: a FromNow follow (no replay; a resync re-reads the record).
	live bool
	// record is the record as read after the subscription.
	record R
	// replay are the stream's events after the resume id, read after the
	// subscription was confirmed; Run sends them first.
	replay []jobs.Event
	// snapshotID is set when the resume id was trimmed away: the first Run
	// starts with a snapshot standing for the stream up to this id.
	snapshotID string
	trimmed    bool
	// primed is set once Run has sent the replay (or found the source
	// ended before it).
	primed bool
	last   string
}

// Follow subscribes to src and reads its record and the events after the
// resume id after ("" or "0" for all, FromNow for none). Errors come before
// anything is written (ErrNotFound: the source is gone), so the caller can
// still answer with a status. Close the follower when done.
func Follow[R any](ctx context.Context, cfg FollowConfig, src Source[R], after string) (*Follower[R], error) {
	sctx, cancel := cfg.bound(ctx)
	defer cancel()
	f, err := subscribe(sctx, cfg, src, after)
	if err != nil {
		return nil, err
	}
	if err := f.prime(sctx, after); err != nil {
		f.Close()
		return nil, err
	}
	f.startBeat()
	return f, nil
}

// subscribe begins a follow: the subscription, confirmed, and nothing read.
func subscribe[R any](ctx context.Context, cfg FollowConfig, src Source[R], after string) (*Follower[R], error) {
	sub, err := cfg.Hub.subscribe(ctx, src.Channel(), cfg.EndsOnly)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", src.Channel(), err)
	}
	f := &Follower[R]{cfg: cfg, src: src, sub: sub, live: after == FromNow}
	if !f.live {
		f.last = after
	}
	return f, nil
}

// startBeat starts the heartbeat once the follow has its record.
func (f *Follower[R]) startBeat() {
	if f.cfg.Heartbeat > 0 {
		f.beat = time.NewTicker(f.cfg.Heartbeat)
	}
}

func (f *Follower[R]) prime(ctx context.Context, after string) error {
	// The record after the subscription: whatever it says, later events
	// arrive live.
	r, err := f.src.Load(ctx)
	if err != nil {
		return err
	}
	f.record = r
	switch after {
	case FromNow:
		return nil
	case "", "0":
	default:
		first, last, err := f.src.Stream().bounds(ctx)
		if err != nil {
			return err
		}
		// Trimmed (older than the oldest kept event), or an id this stream
		// never had (newer than its newest): the reader's position is
		// unknown, so it gets the record instead.
		f.trimmed = first == "" || jobs.CompareIDs(after, first) < 0 ||
			(last != "" && jobs.CompareIDs(after, last) > 0 && !f.src.Ended(r))
		if f.trimmed {
			f.snapshotID = after
			if last != "" {
				f.snapshotID = last
			}
			// Re-read the record: it must be at least as new as the
			// position it stands for.
			f.record, err = f.src.Load(ctx)
			return err
		}
	}
	f.replay, err = f.src.Stream().Read(ctx, after, 0)
	return err
}

// Record is the source's record as read when the follow began.
func (f *Follower[R]) Record() R { return f.record }

// Close ends the subscription.
func (f *Follower[R]) Close() {
	if f.beat != nil {
		f.beat.Stop()
	}
	f.sub.Close()
}

// send sends ev unless the reader has it already; done reports a final
// frame.
func (f *Follower[R]) send(out Sink[R], ev jobs.Event) (done bool, err error) {
	if f.last != "" && jobs.CompareIDs(ev.ID, f.last) <= 0 {
		return false, nil
	}
	err = out.Event(ev)
	f.last = ev.ID
	if errors.Is(err, ErrStop) {
		return true, nil
	}
	if err != nil {
		return true, err
	}
	return ev.Type.Terminal(), nil
}

// sendQueued sends ev and the events already queued behind it, then flushes
// once. An idle reader still gets each event at once; one that has fallen
// behind (a burst of tokens, a busy process) catches up with one write per
// burst instead of one per event. It stops at a pending resync, which the
// run loop must handle before any later event.
func (f *Follower[R]) sendQueued(out Sink[R], ev jobs.Event) (done bool, err error) {
	out.Hold()
	done, err = f.send(out, ev)
	for n := len(f.sub.C()); n > 0 && !done && err == nil && len(f.sub.Resync()) == 0; n-- {
		done, err = f.send(out, <-f.sub.C()) // only this goroutine receives: never blocks
	}
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return done, err
}

// catchUp sends the stream's events after the last one sent.
func (f *Follower[R]) catchUp(ctx context.Context, out Sink[R]) (done bool, err error) {
	rctx, cancel := f.cfg.bound(ctx)
	defer cancel()
	evs, err := f.src.Stream().Read(rctx, f.last, 0)
	if err != nil {
		return false, err
	}
	if done, err := f.sendAll(out, evs); done || err != nil {
		return true, err
	}
	return false, nil
}

// sendAll sends evs with one flush (a resume or a re-read may hold hundreds
// of token events).
func (f *Follower[R]) sendAll(out Sink[R], evs []jobs.Event) (done bool, err error) {
	if len(evs) == 0 {
		return false, nil
	}
	out.Hold()
	for _, ev := range evs {
		if done, err = f.send(out, ev); done || err != nil {
			break
		}
	}
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return done, err
}

// Run relays until the source ends, the sink stops it, the reader goes
// (ctx), the hub drops the reader, shutdown (FollowConfig.Stop), or timeout
// fires (nil: never). The first Run sends what precedes the live events; a
// later Run goes on from where the previous one stopped.
func (f *Follower[R]) Run(ctx context.Context, out Sink[R], timeout <-chan time.Time) (FollowEnd, error) {
	log := zerolog.Ctx(ctx)
	if !f.primed {
		f.primed = true
		if f.trimmed {
			if err := out.Snapshot(f.record, f.snapshotID); err != nil {
				return EndFinished, ignoreStop(err)
			}
			f.last = f.snapshotID
			if f.src.Ended(f.record) {
				return EndFinished, nil
			}
		}
		replay := f.replay
		f.replay = nil
		if done, err := f.sendAll(out, replay); done || err != nil {
			return EndFinished, err
		}
		if f.src.Ended(f.record) {
			// The record had ended before the replay was read, so the replay
			// held the end: this reader was already past it (or, following
			// from now, has the record).
			return EndFinished, nil
		}
	}
	var beat <-chan time.Time
	if f.beat != nil {
		beat = f.beat.C
	}
	resyncDue := false
	for {
		select {
		case ev, ok := <-f.sub.C():
			if !ok {
				if errors.Is(f.sub.Err(), ErrSlowSubscriber) {
					return EndSlow, nil
				}
				return EndReconnect, out.Reconnect(f.last)
			}
			// A live event after a pub/sub reconnect arrives after the
			// hub's resync signal: fill the gap first, or the event would
			// jump over the events lost meanwhile.
			select {
			case <-f.sub.Resync():
				resyncDue = true
			default:
			}
			if resyncDue {
				end, done, err := f.resync(ctx, out)
				if done {
					return end, err
				}
				if resyncDue = err != nil; resyncDue {
					// The stream will have this event too: the next
					// heartbeat's re-read sends it in order.
					continue
				}
			}
			if done, err := f.sendQueued(out, ev); done || err != nil {
				return EndFinished, err
			}
		case <-f.sub.Resync():
			// Events published while pub/sub was reconnecting were lost:
			// the stream has them.
			end, done, err := f.resync(ctx, out)
			if done {
				return end, err
			}
			if resyncDue = err != nil; resyncDue {
				log.Warn().Err(err).Str("channel", f.src.Channel()).Msg("follow: re-read after a pub/sub reconnect failed; retrying at the next heartbeat")
			}
		case <-beat:
			if err := out.Heartbeat(); err != nil {
				return EndFinished, err
			}
			end, done, err := f.recheck(ctx, out, resyncDue)
			if done {
				return end, err
			}
			resyncDue = err != nil
		case <-f.cfg.Stop:
			return EndReconnect, out.Reconnect(f.last)
		case <-timeout:
			return EndTimeout, nil
		case <-ctx.Done():
			return EndFinished, ctx.Err()
		}
	}
}

// resync makes up for the events a pub/sub reconnect lost: the stream's
// events after the last one sent, or, following from now, the record.
func (f *Follower[R]) resync(ctx context.Context, out Sink[R]) (FollowEnd, bool, error) {
	zerolog.Ctx(ctx).Debug().Str("channel", f.src.Channel()).Str("after", f.last).Msg("follow: re-reading the stream after a pub/sub reconnect")
	if f.live {
		return f.recheck(ctx, out, true)
	}
	done, err := f.catchUp(ctx, out)
	return EndFinished, done, err
}

// drain sends the events already delivered to the subscription, without
// waiting for more.
func (f *Follower[R]) drain(out Sink[R]) (FollowEnd, error) {
	for {
		select {
		case ev, ok := <-f.sub.C():
			if !ok {
				return EndGone, nil
			}
			if done, err := f.send(out, ev); done || err != nil {
				return EndGone, err
			}
		default:
			return EndGone, nil
		}
	}
}

// recheck reads the record at a heartbeat (or a resync): a source that
// ended (or vanished) without its event reaching us ends the follow now.
func (f *Follower[R]) recheck(ctx context.Context, out Sink[R], resync bool) (FollowEnd, bool, error) {
	rctx, cancel := f.cfg.bound(ctx)
	r, err := f.src.Load(rctx)
	cancel()
	switch {
	case errors.Is(err, ErrNotFound):
		// Deleted: its last events may be on their way still.
		end, err := f.drain(out)
		return end, true, err
	case err != nil:
		zerolog.Ctx(ctx).Warn().Err(err).Str("channel", f.src.Channel()).Msg("follow: heartbeat re-check failed")
		return EndFinished, false, err
	}
	ended := f.src.Ended(r)
	if !ended && !resync {
		return EndFinished, false, nil
	}
	if f.live {
		// The position is unknown: the record stands for whatever was
		// missed.
		err := out.Snapshot(r, f.position())
		return EndFinished, ended || err != nil, ignoreStop(err)
	}
	if done, err := f.catchUp(ctx, out); done || err != nil {
		return EndFinished, done, err
	}
	if !ended {
		return EndFinished, false, nil
	}
	// Ended, but its event is not in the stream: send the record.
	return EndFinished, true, ignoreStop(out.Snapshot(r, f.position()))
}

// position is the last id sent, "0" before any.
func (f *Follower[R]) position() string {
	if f.last == "" {
		return "0"
	}
	return f.last
}

func ignoreStop(err error) error {
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// Wait runs the follow until its source ends or timeout passes, and returns
// the record as it then is: the record the follow began with if it had
// ended, the ended record a recheck or resync read, the record as the
// terminal event says it ended (endedBy: a job's completed event), or else
// a read after the terminal event (the script that appended it wrote the
// record first) or the timeout. A follow from now (FromNow) of a job that
// completes so reads the record once, when it begins. When the hub drops
// the follow, it returns the newest record it has; ErrNotFound when the
// source is gone.
func (f *Follower[R]) Wait(ctx context.Context, timeout time.Duration) (R, error) {
	if !f.primed && f.src.Ended(f.record) {
		return f.record, nil
	}
	out := &waitSink[R]{src: f.src, latest: f.record}
	t := time.NewTimer(timeout)
	defer t.Stop()
	end, err := f.Run(ctx, out, t.C)
	var zero R
	switch {
	case out.ended:
		return out.latest, nil
	case err != nil:
		return zero, err
	case end == EndGone:
		return zero, ErrNotFound
	case end == EndSlow, end == EndReconnect:
		return out.latest, nil
	}
	rctx, cancel := f.cfg.bound(ctx)
	defer cancel()
	return f.src.Load(rctx)
}

// waitSink is a wait's sink: it stops at the end, and keeps the newest
// record it was given.
type waitSink[R any] struct {
	src    Source[R]
	latest R
	ended  bool
}

func (w *waitSink[R]) Event(ev jobs.Event) error {
	if !ev.Type.Terminal() {
		return nil
	}
	if e, ok := w.src.(endedBy[R]); ok {
		if r, ok := e.EndedBy(w.latest, ev); ok {
			w.latest, w.ended = r, true
		}
	}
	return ErrStop
}

func (w *waitSink[R]) Snapshot(r R, _ string) error {
	w.latest = r
	if w.ended = w.src.Ended(r); w.ended {
		return ErrStop
	}
	return nil
}

func (w *waitSink[R]) Heartbeat() error       { return nil }
func (w *waitSink[R]) Hold()                  {}
func (w *waitSink[R]) Flush() error           { return nil }
func (w *waitSink[R]) Reconnect(string) error { return nil }
