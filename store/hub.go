package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Hub errors, seen through Subscription.Err.
var (
	// ErrSlowSubscriber: the subscriber did not keep up and was dropped, so
	// that one slow client never blocks the others.
	ErrSlowSubscriber = errors.New("subscriber too slow: dropped")
	// ErrHubClosed: the hub is shutting down; clients should reconnect
	// (elsewhere) and resume with their last event id.
	ErrHubClosed = errors.New("event hub closed")
)

// DefaultSubscriberBuffer is how many events a subscriber may fall behind.
const DefaultSubscriberBuffer = 512

// endsBuffer is an ends-only subscription's buffer (SubscribeEnds): a
// channel carries one end, so a few is plenty, where a full buffer would
// cost every wait a 32 KiB allocation.
const endsBuffer = 4

// Hub fans the events of many jobs out to many subscribers over one shared
// pub/sub connection. It is safe for concurrent use.
type Hub struct {
	ps     *redis.PubSub
	log    zerolog.Logger
	buffer int

	mu       sync.Mutex
	channels map[string]*channelSubs
	// inflight counts SUBSCRIBE commands per channel not yet confirmed, so a
	// late confirmation of an earlier subscription is not taken for ours.
	inflight map[string]int
	// ops are (un)subscribe commands, queued under mu and sent in order by
	// Run, so an UNSUBSCRIBE can never overtake a later SUBSCRIBE.
	ops    []subOp
	wake   chan struct{}
	closed bool
	done   chan struct{}
}

type subOp struct {
	channel   string
	subscribe bool
}

type channelSubs struct {
	subs      map[*Subscription]struct{}
	confirmed bool
	ready     chan struct{} // closed on the first SUBSCRIBE confirmation
}

// Subscription receives one channel's events.
type Subscription struct {
	hub     *Hub
	channel string
	c       chan jobs.Event
	resync  chan struct{}
	ready   <-chan struct{}
	// endsOnly: only terminal events are delivered (SubscribeEnds).
	endsOnly bool

	mu     sync.Mutex
	err    error
	closed bool
}

// NewHub opens the shared pub/sub connection on rdb. Run must be called to
// deliver events; Close ends every subscription with ErrHubClosed.
func NewHub(ctx context.Context, rdb redis.UniversalClient, log zerolog.Logger) *Hub {
	return &Hub{
		ps:       rdb.Subscribe(ctx),
		log:      log,
		buffer:   DefaultSubscriberBuffer,
		channels: map[string]*channelSubs{},
		inflight: map[string]int{},
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

// Run delivers events until ctx is done or the hub is closed.
func (h *Hub) Run(ctx context.Context) {
	defer close(h.done)
	go h.sendOps(ctx)
	ch := h.ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					h.confirm(m.Channel)
				}
			case *redis.Message:
				ev, err := jobs.ParseEvent(m.Payload)
				if err != nil {
					h.log.Warn().Err(err).Str("channel", m.Channel).Msg("dropping malformed event")
					continue
				}
				h.deliver(m.Channel, ev)
			}
		}
	}
}

// sendOps sends queued (un)subscribe commands in order. An UNSUBSCRIBE is
// skipped when the channel has subscribers again by the time it is sent.
func (h *Hub) sendOps(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.done:
			return
		case <-h.wake:
		}
		for {
			h.mu.Lock()
			if len(h.ops) == 0 || h.closed {
				h.mu.Unlock()
				break
			}
			op := h.ops[0]
			h.ops = h.ops[1:]
			if !op.subscribe && h.channels[op.channel] != nil {
				h.mu.Unlock()
				continue
			}
			h.mu.Unlock()
			var err error
			if op.subscribe {
				err = h.ps.Subscribe(ctx, op.channel)
			} else {
				err = h.ps.Unsubscribe(ctx, op.channel)
			}
			if err != nil {
				// go-redis keeps the channel set and resubscribes on reconnect;
				// the confirmation then arrives through Run.
				h.log.Warn().Err(err).Str("channel", op.channel).Bool("subscribe", op.subscribe).Msg("pub/sub command failed")
			}
		}
	}
}

// queueLocked queues a command for sendOps; h.mu is held.
func (h *Hub) queueLocked(channel string, subscribe bool) {
	h.ops = append(h.ops, subOp{channel: channel, subscribe: subscribe})
	if subscribe {
		h.inflight[channel]++
	}
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// confirm marks a channel subscribed. A second confirmation means go-redis
// reconnected and subscribed again: events published meanwhile were lost, so
// every subscriber is told to re-read its stream.
func (h *Hub) confirm(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := h.inflight[channel]; n > 0 {
		if n == 1 {
			delete(h.inflight, channel)
		} else {
			h.inflight[channel] = n - 1
		}
		if n > 1 {
			return // an earlier SUBSCRIBE's confirmation; ours is still to come
		}
	}
	cs := h.channels[channel]
	if cs == nil {
		return
	}
	if !cs.confirmed {
		cs.confirmed = true
		close(cs.ready)
		return
	}
	for s := range cs.subs {
		select {
		case s.resync <- struct{}{}:
		default:
		}
	}
}

func (h *Hub) deliver(channel string, ev jobs.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := h.channels[channel]
	if cs == nil {
		return
	}
	for s := range cs.subs {
		if s.endsOnly && !ev.Type.Terminal() {
			continue
		}
		select {
		case s.c <- ev:
		default:
			h.dropLocked(s, ErrSlowSubscriber)
		}
	}
}

// Subscribe starts receiving the events of a channel (see jobs.Channel). It
// returns once Redis has confirmed the subscription, so a caller that then
// reads the stream's history misses nothing between the two.
func (h *Hub) Subscribe(ctx context.Context, channel string) (*Subscription, error) {
	return h.subscribe(ctx, channel, false)
}

// SubscribeEnds is Subscribe for a reader that needs a channel's terminal
// events only (a wait): it is given nothing else, through a small buffer,
// so no burst of token events can make it fall behind.
func (h *Hub) SubscribeEnds(ctx context.Context, channel string) (*Subscription, error) {
	return h.subscribe(ctx, channel, true)
}

func (h *Hub) subscribe(ctx context.Context, channel string, endsOnly bool) (*Subscription, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrHubClosed
	}
	cs := h.channels[channel]
	fresh := cs == nil
	if fresh {
		cs = &channelSubs{subs: map[*Subscription]struct{}{}, ready: make(chan struct{})}
		h.channels[channel] = cs
	}
	buffer := h.buffer
	if endsOnly {
		buffer = min(buffer, endsBuffer)
	}
	s := &Subscription{hub: h, channel: channel, c: make(chan jobs.Event, buffer), resync: make(chan struct{}, 1),
		ready: cs.ready, endsOnly: endsOnly}
	cs.subs[s] = struct{}{}
	if fresh {
		h.queueLocked(channel, true)
	}
	h.mu.Unlock()

	select {
	case <-s.ready:
		return s, nil
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("subscribe %s: %w", channel, ctx.Err())
	case <-h.done:
		s.Close()
		return nil, ErrHubClosed
	}
}

// Subscribers counts the live subscriptions.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, cs := range h.channels {
		n += len(cs.subs)
	}
	return n
}

// Close ends every subscription with ErrHubClosed and closes the connection.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	for _, cs := range h.channels {
		for s := range cs.subs {
			h.dropLocked(s, ErrHubClosed)
		}
	}
	h.mu.Unlock()
	return h.ps.Close()
}

// dropLocked ends s with err; h.mu is held.
func (h *Hub) dropLocked(s *Subscription, err error) {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.err = err
		close(s.c)
	}
	s.mu.Unlock()
	h.removeLocked(s)
}

func (h *Hub) removeLocked(s *Subscription) {
	cs := h.channels[s.channel]
	if cs == nil {
		return
	}
	if _, ok := cs.subs[s]; !ok {
		return
	}
	delete(cs.subs, s)
	if len(cs.subs) == 0 {
		delete(h.channels, s.channel)
		if !h.closed {
			h.queueLocked(s.channel, false)
		}
	}
}

// C delivers the channel's events in order. It is closed when the subscription
// ends; Err then says why (nil after Close).
func (s *Subscription) C() <-chan jobs.Event { return s.c }

// Resync receives a value when events may have been lost (the pub/sub
// connection was re-established): re-read the stream after the last id seen.
func (s *Subscription) Resync() <-chan struct{} { return s.resync }

// Err says why C was closed.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.c)
	}
	s.mu.Unlock()
	s.hub.removeLocked(s)
}
