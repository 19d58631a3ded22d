package worker

import (
	"context"
	"sync"
	"time"
)

// tokenSink is where a job's answer pieces go: the attempt's Token method.
type tokenSink func(ctx context.Context, field, content string) error

// resetSink voids what was streamed so far: the attempt's Reset method.
type resetSink func(ctx context.Context, reason string) error

// resetField marks a queued reset among the segments (no output field is
// named "").
const resetField = ""

// coalescer publishes a job's streamed chunks. The first chunk goes out at
// once (time to first token); after each publish it waits `every` before the
// next, and whatever arrived meanwhile goes out together, one event per field
// run. So Redis sees at most one write per job per interval however fast the
// LM streams, and chunk order is kept across fields.
type coalescer struct {
	sink  tokenSink
	reset resetSink
	every time.Duration

	mu      sync.Mutex
	pending []segment
	err     error // first publish error; the run stops on it
	seen    map[string]bool
	wake    chan struct{}
	urgent  chan struct{} // a field's first chunk: publish without waiting
	done    chan struct{}
	stopped chan struct{}
}

type segment struct{ field, content string }

func newCoalescer(sink tokenSink, reset resetSink, every time.Duration) *coalescer {
	return &coalescer{
		sink: sink, reset: reset, every: every, seen: map[string]bool{},
		wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1),
		done: make(chan struct{}), stopped: make(chan struct{}),
	}
}

// addReset queues a reset after the chunks already queued, so clients see
// every piece of the abandoned output before they are told to drop it.
func (c *coalescer) addReset(reason string) error {
	c.mu.Lock()
	c.pending = append(c.pending, segment{resetField, reason})
	clear(c.seen) // the restarted output's first chunks go out at once again
	err := c.err
	c.mu.Unlock()
	signal(c.wake)
	signal(c.urgent)
	return err
}

// add queues a chunk. It returns the first publish error seen, so the caller
// can stop a run whose job was cancelled or superseded.
func (c *coalescer) add(field, content string) error {
	if content == "" || field == resetField {
		return nil
	}
	c.mu.Lock()
	if n := len(c.pending); n > 0 && c.pending[n-1].field == field {
		c.pending[n-1].content += content
	} else {
		c.pending = append(c.pending, segment{field, content})
	}
	first := !c.seen[field]
	c.seen[field] = true
	err := c.err
	c.mu.Unlock()
	signal(c.wake)
	if first {
		signal(c.urgent)
	}
	return err
}

// run publishes until close; ctx bounds each write.
func (c *coalescer) run(ctx context.Context) {
	defer close(c.stopped)
	for {
		select {
		case <-c.wake:
		case <-c.done:
			c.flush(ctx)
			return
		}
		c.flush(ctx)
		t := time.NewTimer(c.every)
		select {
		case <-t.C:
		case <-c.urgent:
			t.Stop()
		case <-c.done:
			t.Stop()
			c.flush(ctx)
			return
		}
	}
}

func (c *coalescer) flush(ctx context.Context) {
	c.mu.Lock()
	batch := c.pending
	c.pending = nil
	failed := c.err != nil
	c.mu.Unlock()
	if failed {
		return
	}
	for _, s := range batch {
		var err error
		if s.field == resetField {
			err = c.reset(ctx, s.content)
		} else {
			err = c.sink(ctx, s.field, s.content)
		}
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// close publishes what is left and waits for the publisher to finish; it
// returns the first publish error.
func (c *coalescer) close() error {
	close(c.done)
	<-c.stopped
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
