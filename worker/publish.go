package worker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/qaqueue/qaqueue/internal/redisconn"
	"github.com/qaqueue/qaqueue/store"
)

// tokenSink is where a job's answer pieces go: the attempt's StageToken
// method (stage "" for a single-stage program).
type tokenSink func(ctx context.Context, stage, field, content string) error

// resetSink voids what was streamed so far (of stage, for a multi-stage
// program): the attempt's StageReset method.
type resetSink func(ctx context.Context, stage, reason string) error

// resetField marks a queued reset among the segments (no output field is
// named "").
const resetField = ""

// coalescer publishes a job's streamed chunks. The first chunk goes out at
// once (time to first token); after each publish it waits `every` before the
// next, and whatever arrived meanwhile goes out together, one event per field
// run. So Redis sees at most one write per job per interval however fast the
// LM streams, and chunk order is kept across fields.
//
// A write refused because Redis is unreachable does not stop the run (the LM
// call it would end has been paid for): the unsent text stays queued ahead of
// newer chunks and goes out with a later flush, backing off while Redis is
// away, so the stream has no gap; the attempt numbers its writes, so a repeat
// of one that landed is not published twice. A write refused because the
// job ended or the attempt is stale stops the run.
type coalescer struct {
	sink  tokenSink
	reset resetSink
	every time.Duration

	mu      sync.Mutex
	pending []segment
	stage   string // the stage whose chunks add queues (multi-stage)
	err     error  // first error that stops the run
	seen    map[string]bool
	wake    chan struct{}
	urgent  chan struct{} // a field's first chunk: publish without waiting
	done    chan struct{}
	stopped chan struct{}
	syncs   chan chan struct{} // sync's requests
	holding bool               // closeHolding: the end sends only sealed segments
}

// segment is a queued write. sealed marks one whose write failed: it may
// have landed, so it is repeated exactly as it was and takes no more chunks.
type segment struct {
	stage, field, content string
	sealed                bool
}

func newCoalescer(sink tokenSink, reset resetSink, every time.Duration) *coalescer {
	return &coalescer{
		sink: sink, reset: reset, every: every, seen: map[string]bool{},
		wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1),
		done: make(chan struct{}), stopped: make(chan struct{}), syncs: make(chan chan struct{}),
	}
}

// addReset queues a reset after the chunks already queued, so clients see
// every piece of the abandoned output before they are told to drop it.
func (c *coalescer) addReset(reason string) error {
	c.mu.Lock()
	c.pending = append(c.pending, segment{stage: c.stage, field: resetField, content: reason})
	clear(c.seen) // the restarted output's first chunks go out at once again
	signal(c.urgent)
	err := c.err
	c.mu.Unlock()
	signal(c.wake)
	return err
}

// add queues a chunk. It returns the error that stopped publishing, if any,
// so the caller can stop a run whose job was cancelled or superseded.
func (c *coalescer) add(field, content string) error {
	if content == "" || field == resetField {
		return nil
	}
	c.mu.Lock()
	if n := len(c.pending); n > 0 && c.pending[n-1].field == field && c.pending[n-1].stage == c.stage && !c.pending[n-1].sealed {
		c.pending[n-1].content += content
	} else {
		c.pending = append(c.pending, segment{stage: c.stage, field: field, content: content})
	}
	if !c.seen[field] {
		c.seen[field] = true
		signal(c.urgent)
	}
	err := c.err
	c.mu.Unlock()
	signal(c.wake)
	return err
}

// setStage makes the chunks and resets queued from now on stage's: a
// multi-stage program's next stage has started.
func (c *coalescer) setStage(stage string) {
	c.mu.Lock()
	c.stage = stage
	clear(c.seen) // the stage's first chunks go out at once
	c.mu.Unlock()
}

// sync returns once every chunk queued before it has been published (or
// publishing has stopped, whose error it returns): what a stage streamed
// goes out before its stage_completed event.
func (c *coalescer) sync(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case c.syncs <- reply:
	case <-c.stopped:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
	case <-c.stopped:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// run publishes until close; ctx bounds each write.
func (c *coalescer) run(ctx context.Context) {
	defer close(c.stopped)
	var backoff time.Duration // while Redis is unreachable
	for {
		select {
		case <-c.wake:
		case reply := <-c.syncs:
			c.drain(ctx)
			close(reply)
			continue
		case <-c.done:
			c.drain(ctx)
			return
		}
		// A run that ended before this wake was served (its answer came in
		// one burst) hands the rest to its end write: select picks at random
		// among ready cases, so the end is checked here, not raced.
		select {
		case <-c.done:
			c.drain(ctx)
			return
		default:
		}
		wait, urgent := c.every, c.urgent
		if err := c.flush(ctx); err != nil {
			backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
			wait, urgent = max(wait, backoff), nil
			signal(c.wake) // what is left goes out after the wait
		} else {
			backoff = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-urgent:
			t.Stop()
		case reply := <-c.syncs:
			t.Stop()
			c.drain(ctx)
			close(reply)
		case <-c.done:
			t.Stop()
			c.drain(ctx)
			return
		}
	}
}

// drain publishes what is left when the run ends (or a sync asks),
// waiting out an outage as the attempt's end write does; if Redis stays
// away, the error stops the attempt. Ending for closeHolding, it publishes
// only the sealed segments.
func (c *coalescer) drain(ctx context.Context) {
	flush := c.flush
	c.mu.Lock()
	if c.holding {
		flush = c.flushSealed
	}
	c.mu.Unlock()
	if err := persist(ctx, flush); err != nil {
		c.stop(err)
	}
}

// flush writes the queued segments in order. It returns an error only when
// Redis is unreachable, with the unsent segments queued again; any other
// error stops publishing.
func (c *coalescer) flush(ctx context.Context) error { return c.write(ctx, false) }

// flushSealed is flush of the leading sealed segments only: writes that may
// have landed, which only a repeat may publish.
func (c *coalescer) flushSealed(ctx context.Context) error { return c.write(ctx, true) }

func (c *coalescer) write(ctx context.Context, sealedOnly bool) error {
	c.mu.Lock()
	n := len(c.pending)
	if sealedOnly {
		n = 0
		for n < len(c.pending) && c.pending[n].sealed {
			n++
		}
	}
	batch := c.pending[:n:n]
	c.pending = c.pending[n:]
	// An urgent signal asks for chunks this flush takes: left, it would cut
	// the next wait short. It is sent under mu, so it cannot come late.
	select {
	case <-c.urgent:
	default:
	}
	stopped := c.err != nil
	c.mu.Unlock()
	if stopped {
		return nil
	}
	for i, s := range batch {
		var err error
		if s.field == resetField {
			err = c.reset(ctx, s.stage, s.content)
		} else {
			err = c.sink(ctx, s.stage, s.field, s.content)
		}
		switch {
		case err == nil:
			continue
		case redisconn.Unavailable(err):
			batch[i].sealed = true
			c.mu.Lock()
			c.pending = slices.Concat(batch[i:], c.pending)
			c.mu.Unlock()
			return err
		default:
			c.stop(err)
			return nil
		}
	}
	return nil
}

func (c *coalescer) stop(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// closeHolding is close for a run that has its result: what is left
// unsent goes to the attempt's end write instead (store.Attempt.Trail),
// one write fewer. Segments whose write may have landed go out first, as
// close sends them.
func (c *coalescer) closeHolding() ([]store.Piece, error) {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
	close(c.done)
	<-c.stopped
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	pieces := make([]store.Piece, 0, len(c.pending))
	for _, s := range c.pending {
		pieces = append(pieces, store.Piece{Stage: s.stage, Field: s.field, Content: s.content})
	}
	c.pending = nil
	return pieces, nil
}

// close publishes what is left and waits for the publisher to finish; it
// returns the error that stopped publishing, if any.
func (c *coalescer) close() error {
	close(c.done)
	<-c.stopped
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
