package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/rs/zerolog"
)

// recordingSink records what a follow writes and how it flushes.
type recordingSink struct {
	ids     []string
	held    bool
	flushes int
	// perFlush[i] is how many events went out with flush i.
	perFlush []int
	pending  int
}

func (r *recordingSink) Event(ev jobs.Event) error {
	r.ids = append(r.ids, ev.ID)
	if r.held {
		r.pending++
		return nil
	}
	r.flushes++
	r.perFlush = append(r.perFlush, 1)
	return nil
}
func (r *recordingSink) Snapshot(*jobs.Job, string) error { return nil }
func (r *recordingSink) Heartbeat() error                 { return nil }
func (r *recordingSink) Reconnect(string) error           { return nil }
func (r *recordingSink) Hold()                            { r.held = true }
func (r *recordingSink) Flush() error {
	r.held = false
	r.flushes++
	r.perFlush = append(r.perFlush, r.pending)
	r.pending = 0
	return nil
}

// TestFollowCoalescesQueuedEvents: events that queued up behind the one the
// follow woke for go out with it in one flush, in order; a resync pending
// stops the burst so the run loop re-reads the stream first.
func TestFollowCoalescesQueuedEvents(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub := NewHub(ctx, db.Client, zerolog.Nop())
	done := make(chan struct{})
	go func() { hub.Run(ctx); close(done) }()
	defer func() { _ = hub.Close(); cancel(); <-done }()

	const id = "0123456789abcdef0123456789abcdef"
	sub, err := hub.Subscribe(ctx, jobs.Channel(id))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := 1; i <= 5; i++ {
		msg := fmt.Sprintf(`{"id":"%d-0","type":"token","data":{"attempt":1,"field":"answer","content":"t%d"}}`, i, i)
		if err := db.Client.Publish(ctx, jobs.Channel(id), msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second) // a hang guard, not a timing bound
	for len(sub.C()) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 5 events reached the subscription", len(sub.C()))
		}
		time.Sleep(time.Millisecond)
	}
	f := &Follower[*jobs.Job]{sub: sub}
	out := &recordingSink{}
	if done, err := f.sendQueued(out, <-sub.C()); done || err != nil {
		t.Fatalf("sendQueued = %v, %v", done, err)
	}
	if got := fmt.Sprint(out.ids); got != "[1-0 2-0 3-0 4-0 5-0]" {
		t.Errorf("events sent = %s", got)
	}
	if fmt.Sprint(out.perFlush) != "[5]" {
		t.Errorf("flushes = %v, want the five events in one", out.perFlush)
	}

	// sendAll: a replay goes out in one flush and stops at the end.
	out = &recordingSink{}
	f.last = ""
	evs := []jobs.Event{{ID: "6-0", Type: jobs.EventToken}, {ID: "7-0", Type: jobs.EventCompleted}, {ID: "8-0", Type: jobs.EventToken}}
	if done, err := f.sendAll(out, evs); !done || err != nil {
		t.Fatalf("sendAll through a terminal event = %v, %v", done, err)
	}
	if fmt.Sprint(out.ids) != "[6-0 7-0]" || fmt.Sprint(out.perFlush) != "[2]" {
		t.Errorf("sendAll sent %v in flushes %v", out.ids, out.perFlush)
	}
}
