package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
)

// The relay: one job's events from Redis to one client. It subscribes
// through the process's shared hub first (returning once Redis confirmed),
// then replays the job's stream after the client's resume id, then relays
// live events with greater ids only — no gap, no duplicate. After a pub/sub
// reconnect (Resync) it re-reads the stream after the last id it sent; at
// each heartbeat it re-checks the record, so a job that ended without a
// deliverable event still ends the stream.

// followSource is what a relay follows: a job or a batch (R is its record).
type followSource[R any] interface {
	// channel is the pub/sub channel; eventsKey the capped stream.
	channel() string
	eventsKey() string
	// load reads the record; store.ErrNotFound when it is gone.
	load(ctx context.Context) (R, error)
	// ended reports whether the record has ended.
	ended(r R) bool
	// events reads the stream after the id after.
	events(ctx context.Context, after string) ([]jobs.Event, error)
}

// jobSource follows a job.
type jobSource struct {
	store *store.Jobs
	id    string
}

func (j jobSource) channel() string   { return jobs.Channel(j.id) }
func (j jobSource) eventsKey() string { return jobs.EventsKey(j.id) }
func (j jobSource) load(ctx context.Context) (*jobs.Job, error) {
	return j.store.Get(ctx, j.id)
}
func (j jobSource) ended(r *jobs.Job) bool { return r.Status.Terminal() }
func (j jobSource) events(ctx context.Context, after string) ([]jobs.Event, error) {
	return j.store.Events(ctx, j.id, after, 0)
}

// sink renders the relay's output for one kind of stream.
type sink[R any] interface {
	// event sends one event; errStop ends the relay as finished.
	event(ev jobs.Event) error
	// snapshot sends the record in place of events the client cannot get
	// (a trimmed resume id, or an end without a terminal event); id is the
	// stream position it stands for.
	snapshot(r R, id string) error
	heartbeat() error
	// hold keeps what is written next in the buffer until flush, so that a
	// burst of events goes out in one write.
	hold()
	flush() error
	// reconnect tells the client to come back (shutdown); last is the last
	// id sent.
	reconnect(last string) error
}

// errStop is returned by a sink that has sent its final frame.
var errStop = errors.New("stream finished")

// followEnd says why a relay ended.
type followEnd int

const (
	endFinished  followEnd = iota // the job ended and the client has been told
	endGone                       // the job was deleted or expired
	endSlow                       // the hub dropped the client: it fell behind
	endReconnect                  // shutdown or hub closed: the client was told to reconnect
	endTimeout                    // the caller's timeout passed
)

// follower is a relay that has subscribed and read what precedes the live
// events; its run writes everything.
type follower[R any] struct {
	s   *Server
	id  string
	src followSource[R]
	sub *store.Subscription
	job R
	// replay are the stream's events after the resume id, read after the
	// subscription was confirmed.
	replay []jobs.Event
	// snapshotID is set when the resume id was trimmed away: run starts with
	// a snapshot standing for the stream up to this id.
	snapshotID string
	trimmed    bool
	last       string
}

// openFollow subscribes to job id and reads its record and the events after
// the resume id after. Errors come before anything is written, so the caller
// can still answer with a status. Close the follower when done.
func (s *Server) openFollow(ctx context.Context, j *jobs.Job, after string) (*follower[*jobs.Job], error) {
	return openSource(ctx, s, j.ID, jobSource{store: s.deps.Store, id: j.ID}, after)
}

// openSource is openFollow for any source.
func openSource[R any](ctx context.Context, s *Server, id string, src followSource[R], after string) (*follower[R], error) {
	sctx, cancel := context.WithTimeout(ctx, s.cfg.RedisTimeout)
	defer cancel()
	sub, err := s.deps.Hub.Subscribe(sctx, src.channel())
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", id, err)
	}
	f := &follower[R]{s: s, id: id, src: src, sub: sub, last: after}
	if err := f.prime(sctx, after); err != nil {
		sub.Close()
		return nil, err
	}
	return f, nil
}

func (f *follower[R]) prime(ctx context.Context, after string) error {
	s, id := f.s, f.id
	// The record after the subscription: whatever it says, later events
	// arrive live.
	j, err := f.src.load(ctx)
	if err != nil {
		return err
	}
	f.job = j
	if after != "" && after != "0" {
		head, err := s.deps.Redis.XRangeN(ctx, f.src.eventsKey(), "-", "+", 1).Result()
		if err != nil {
			return fmt.Errorf("read events of %s: %w", id, err)
		}
		first := ""
		if len(head) > 0 {
			first = head[0].ID
		}
		tail, err := s.deps.Redis.XRevRangeN(ctx, f.src.eventsKey(), "+", "-", 1).Result()
		if err != nil {
			return fmt.Errorf("read events of %s: %w", id, err)
		}
		// Trimmed (older than the oldest kept event), or an id this stream
		// never had (newer than its newest): the client's position is
		// unknown, so it gets the record instead.
		f.trimmed = first == "" || jobs.CompareIDs(after, first) < 0 ||
			(len(tail) > 0 && jobs.CompareIDs(after, tail[0].ID) > 0 && !f.src.ended(j))
		if f.trimmed {
			if len(tail) > 0 {
				f.snapshotID = tail[0].ID
			} else {
				f.snapshotID = after
			}
			// Re-read the record: it must be at least as new as the
			// position it stands for.
			if f.job, err = f.src.load(ctx); err != nil {
				return err
			}
			return nil
		}
	}
	f.replay, err = f.src.events(ctx, after)
	return err
}

// Close ends the subscription.
func (f *follower[R]) Close() { f.sub.Close() }

// send sends ev unless the client has it already; done reports a final
// frame.
func (f *follower[R]) send(out sink[R], ev jobs.Event) (done bool, err error) {
	if f.last != "" && jobs.CompareIDs(ev.ID, f.last) <= 0 {
		return false, nil
	}
	err = out.event(ev)
	f.last = ev.ID
	if errors.Is(err, errStop) {
		return true, nil
	}
	if err != nil {
		return true, err
	}
	return ev.Type.Terminal(), nil
}

// sendQueued sends ev and the events already queued behind it, then flushes
// once. An idle client still gets each event at once; one that has fallen
// behind (a burst of tokens, a busy process) catches up with one write per
// burst instead of one per event. It stops at a pending resync, which the
// run loop must handle before any later event.
func (f *follower[R]) sendQueued(out sink[R], ev jobs.Event) (done bool, err error) {
	out.hold()
	done, err = f.send(out, ev)
	for n := len(f.sub.C()); n > 0 && !done && err == nil && len(f.sub.Resync()) == 0; n-- {
		done, err = f.send(out, <-f.sub.C()) // only this goroutine receives: never blocks
	}
	if ferr := out.flush(); err == nil {
		err = ferr
	}
	return done, err
}

// catchUp sends the stream's events after the last one sent.
func (f *follower[R]) catchUp(ctx context.Context, out sink[R]) (done bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, f.s.cfg.RedisTimeout)
	defer cancel()
	evs, err := f.src.events(rctx, f.last)
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
func (f *follower[R]) sendAll(out sink[R], evs []jobs.Event) (done bool, err error) {
	if len(evs) == 0 {
		return false, nil
	}
	out.hold()
	for _, ev := range evs {
		if done, err = f.send(out, ev); done || err != nil {
			break
		}
	}
	if ferr := out.flush(); err == nil {
		err = ferr
	}
	return done, err
}

// run relays until the job ends, the client goes, the hub drops it, the
// server shuts down, or timeout fires (nil: never).
func (f *follower[R]) run(ctx context.Context, out sink[R], timeout <-chan time.Time) (followEnd, error) {
	s := f.s
	log := zerolog.Ctx(ctx)
	if f.trimmed {
		if err := out.snapshot(f.job, f.snapshotID); err != nil {
			return endFinished, ignoreStop(err)
		}
		f.last = f.snapshotID
		if f.src.ended(f.job) {
			return endFinished, nil
		}
	}
	if done, err := f.sendAll(out, f.replay); done || err != nil {
		return endFinished, err
	}
	if f.src.ended(f.job) {
		// The record had ended before the replay was read, so the replay
		// held the end: this client was already past it.
		return endFinished, nil
	}
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	resyncDue := false
	for {
		select {
		case ev, ok := <-f.sub.C():
			if !ok {
				if errors.Is(f.sub.Err(), store.ErrSlowSubscriber) {
					return endSlow, nil
				}
				return endReconnect, out.reconnect(f.last)
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
				log.Debug().Str("job_id", f.id).Str("after", f.last).Msg("sse: re-reading the stream after a pub/sub reconnect")
				done, err := f.catchUp(ctx, out)
				if done {
					return endFinished, err
				}
				if resyncDue = err != nil; resyncDue {
					// The stream will have this event too: the next
					// heartbeat's re-read sends it in order.
					continue
				}
			}
			if done, err := f.sendQueued(out, ev); done || err != nil {
				return endFinished, err
			}
		case <-f.sub.Resync():
			// Events published while pub/sub was reconnecting were lost:
			// the stream has them.
			log.Debug().Str("job_id", f.id).Str("after", f.last).Msg("sse: re-reading the stream after a pub/sub reconnect")
			done, err := f.catchUp(ctx, out)
			if done {
				return endFinished, err
			}
			if resyncDue = err != nil; resyncDue {
				log.Warn().Err(err).Str("job_id", f.id).Msg("sse: re-read after reconnect failed; retrying at the next heartbeat")
			}
		case <-beat.C:
			if err := out.heartbeat(); err != nil {
				return endFinished, err
			}
			end, done, err := f.recheck(ctx, out, resyncDue)
			if end == endGone {
				// Deleted: its last events may be on their way still.
				return f.drain(out)
			}
			if done {
				return end, err
			}
			resyncDue = err != nil
		case <-s.draining:
			return endReconnect, out.reconnect(f.last)
		case <-timeout:
			return endTimeout, nil
		case <-ctx.Done():
			return endFinished, ctx.Err()
		}
	}
}

// drain sends the events already delivered to the subscription, without
// waiting for more.
func (f *follower[R]) drain(out sink[R]) (followEnd, error) {
	for {
		select {
		case ev, ok := <-f.sub.C():
			if !ok {
				return endGone, nil
			}
			if done, err := f.send(out, ev); done || err != nil {
				return endGone, err
			}
		default:
			return endGone, nil
		}
	}
}

// recheck reads the record at a heartbeat: a job that ended (or vanished)
// without its event reaching us ends the stream now.
func (f *follower[R]) recheck(ctx context.Context, out sink[R], resync bool) (followEnd, bool, error) {
	rctx, cancel := context.WithTimeout(ctx, f.s.cfg.RedisTimeout)
	j, err := f.src.load(rctx)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
		return endGone, true, nil
	case err != nil:
		zerolog.Ctx(ctx).Warn().Err(err).Str("job_id", f.id).Msg("sse: heartbeat re-check failed")
		return endFinished, false, err
	}
	if !f.src.ended(j) && !resync {
		return endFinished, false, nil
	}
	if done, err := f.catchUp(ctx, out); done || err != nil {
		return endFinished, done, err
	}
	if !f.src.ended(j) {
		return endFinished, false, nil
	}
	// Ended, but its event is not in the stream: send the record.
	id := f.last
	if id == "" {
		id = "0"
	}
	return endFinished, true, ignoreStop(out.snapshot(j, id))
}

func ignoreStop(err error) error {
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// sseWriter writes Server-Sent Events frames, flushing each unless held,
// with a write deadline per frame instead of one for the whole response.
type sseWriter struct {
	w            gin.ResponseWriter
	rc           *http.ResponseController
	frameTimeout time.Duration
	held         bool
}

// sseHeaders sets an event stream's status and headers; a HEAD gets these
// alone.
func sseHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
}

// startSSE sends the stream's headers.
func (s *Server) startSSE(c *gin.Context) *sseWriter {
	sseHeaders(c)
	w := &sseWriter{w: c.Writer, rc: http.NewResponseController(c.Writer), frameTimeout: s.cfg.WriteTimeout}
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.frameTimeout))
	c.Writer.WriteHeaderNow()
	_ = w.rc.Flush()
	return w
}

func (w *sseWriter) write(s string) error {
	if err := w.rc.SetWriteDeadline(time.Now().Add(w.frameTimeout)); err != nil {
		return fmt.Errorf("sse: set deadline: %w", err)
	}
	if _, err := w.w.WriteString(s); err != nil {
		return fmt.Errorf("sse: write: %w", err)
	}
	if w.held {
		return nil
	}
	return w.flush()
}

// hold keeps frames in the buffer until flush.
func (w *sseWriter) hold() { w.held = true }

// flush sends what is buffered and ends a hold.
func (w *sseWriter) flush() error {
	w.held = false
	if err := w.rc.Flush(); err != nil {
		return fmt.Errorf("sse: flush: %w", err)
	}
	return nil
}

// frame renders one SSE frame; every line of data gets its own data: field.
func frame(id, event, data string, retry time.Duration) string {
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	if retry > 0 {
		fmt.Fprintf(&b, "retry: %d\n", retry.Milliseconds())
	}
	for _, line := range strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	return b.String()
}
