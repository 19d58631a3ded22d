package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
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
	testwait.Until(t, "5 events to reach the subscription", func() bool { return len(sub.C()) >= 5 })
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

// TestWaitEndsFromTheCompletedEvent: a wait takes a completed event whose
// message carries the record's end as the ended record; a message without
// it (a worker of an earlier release) or another terminal event ends the
// wait without a record, which Wait then reads.
func TestWaitEndsFromTheCompletedEvent(t *testing.T) {
	t.Parallel()
	created := time.UnixMilli(1700000000000).UTC()
	before := &jobs.Job{ID: "j", Status: jobs.StatusRunning, Attempts: 1, CreatedAt: created,
		Spec: jobs.Spec{ClientSpec: jobs.QuestionSpec("q")}, Error: &jobs.Error{Code: "lm_error", Message: "an earlier attempt's"}}
	completed := jobs.Event{ID: "1700000000900-0", Type: jobs.EventCompleted,
		Data:  json.RawMessage(`{"result":{"outputs":{"answer":"a"},"provenance":{"model":"m","program_state_sha256":"","cache_hit":false,"attempts":2,"lm_calls":2},"usage":null,"latency_seconds":0.5}}`),
		Ended: &jobs.Ended{Attempts: 2, StartedAt: 1700000000100, FinishedAt: 1700000000900}}

	w := &waitSink[*jobs.Job]{src: jobSource{id: "j"}, latest: before}
	if err := w.Event(completed); !errors.Is(err, ErrStop) || !w.ended {
		t.Fatalf("completed event: %v, ended %v", err, w.ended)
	}
	started, finished := time.UnixMilli(1700000000100).UTC(), time.UnixMilli(1700000000900).UTC()
	got := w.latest
	if got.Status != jobs.StatusCompleted || got.Attempts != 2 || got.Error != nil || got.Result.Answer("answer") != "a" ||
		got.Result.Provenance.LMCalls != 2 || !got.StartedAt.Equal(started) || !got.FinishedAt.Equal(finished) ||
		!got.CreatedAt.Equal(created) || got.Spec.Question() != "q" || got.ID != "j" {
		t.Errorf("ended record %+v", got)
	}
	if before.Status != jobs.StatusRunning {
		t.Error("the record the wait began with was changed")
	}

	for name, ev := range map[string]jobs.Event{
		"without the record's end": {ID: completed.ID, Type: jobs.EventCompleted, Data: completed.Data},
		"failed":                   {ID: completed.ID, Type: jobs.EventFailed, Data: json.RawMessage(`{"error":{"code":"x","message":"y"}}`)},
	} {
		w := &waitSink[*jobs.Job]{src: jobSource{id: "j"}, latest: before}
		if err := w.Event(ev); !errors.Is(err, ErrStop) || w.ended || w.latest != before {
			t.Errorf("%s: %v, ended %v: want the wait stopped to read the record", name, err, w.ended)
		}
	}
}

// TestFollowBoundNoTimeout: without a Timeout a follow's reads run in the
// caller's context as it is, not in a derived one that costs a context and
// its registration in the parent's children (once per wait).
func TestFollowBoundNoTimeout(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	allocs := testing.AllocsPerRun(100, func() {
		ctx, cancel := FollowConfig{}.bound(parent)
		defer cancel()
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
	})
	if allocs != 0 {
		t.Errorf("bound without a Timeout: %.0f allocations, want none", allocs)
	}
}
