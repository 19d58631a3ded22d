package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// framesOf turns stored events into the frames the relay must send.
func framesOf(evs []jobs.Event) []sseFrame {
	out := make([]sseFrame, len(evs))
	for i, ev := range evs {
		out[i] = sseFrame{ID: ev.ID, HasID: true, Event: string(ev.Type), Data: string(ev.Data)}
	}
	return out
}

func (b *bundle) events(t *testing.T, id, after string) []jobs.Event {
	t.Helper()
	evs, err := b.store.Events(context.Background(), id, after, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func eventsPath(id string) string { return "/v1/jobs/" + id + "/events" }

func TestEventsLive(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit(t, "q")
	s := b.openSSE(t, "GET", eventsPath(id), nil, nil)
	// The replay (queued) arrives once the subscription is confirmed, so
	// everything after it is live.
	first, ok := s.next(t)
	if !ok || first.Event != "queued" {
		t.Fatalf("first frame = %+v", first)
	}
	a := b.start(t, id)
	for _, tok := range []string{"Hel", "lo", " world"} {
		token(t, a, tok)
	}
	complete(t, a, "Hello world")
	got := append([]sseFrame{first}, s.rest(t)...)
	if diff := cmp.Diff(framesOf(b.events(t, id, "")), got); diff != "" {
		t.Fatalf("frames (-want +got):\n%s", diff)
	}
}

func TestEventsLateAndResumed(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit(t, "q")
	a := b.start(t, id)
	token(t, a, "one")
	token(t, a, "two")
	evs := b.events(t, id, "")

	// Late: everything so far, then live events.
	late := b.openSSE(t, "GET", eventsPath(id), nil, nil)
	for i := range evs {
		if f, _ := late.next(t); f.ID != evs[i].ID {
			t.Fatalf("late frame %d = %+v, want id %s", i, f, evs[i].ID)
		}
	}
	// Resumed mid-way, by header and by query parameter.
	byHeader := b.openSSE(t, "GET", eventsPath(id), nil, http.Header{"Last-Event-ID": {evs[1].ID}})
	byQuery := b.openSSE(t, "GET", eventsPath(id)+"?last_event_id="+evs[2].ID, nil, nil)
	if f, _ := byHeader.next(t); f.ID != evs[2].ID {
		t.Fatalf("resumed after %s: first frame %+v", evs[1].ID, f)
	}
	if f, _ := byQuery.next(t); f.ID != evs[3].ID {
		t.Fatalf("resumed after %s: first frame %+v", evs[2].ID, f)
	}
	token(t, a, "three")
	complete(t, a, "onetwothree")
	all := b.events(t, id, "")
	if diff := cmp.Diff(framesOf(all[len(evs):]), late.rest(t)); diff != "" {
		t.Errorf("late, live part (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(framesOf(all[3:]), byHeader.rest(t)); diff != "" {
		t.Errorf("resumed by header (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(framesOf(all[4:]), byQuery.rest(t)); diff != "" {
		t.Errorf("resumed by query (-want +got):\n%s", diff)
	}

	// Past the end: nothing twice, the stream just closes.
	last := all[len(all)-1].ID
	past := b.openSSE(t, "GET", eventsPath(id), nil, http.Header{"Last-Event-ID": {last}})
	if got := past.rest(t); len(got) != 0 {
		t.Errorf("resumed past the end: %+v", got)
	}
	// A fresh client of an ended job gets the whole story and the end.
	fresh := b.openSSE(t, "GET", eventsPath(id), nil, nil)
	if diff := cmp.Diff(framesOf(all), fresh.rest(t)); diff != "" {
		t.Errorf("ended job (-want +got):\n%s", diff)
	}
}

func TestEventsResumeWhileLiveHasNoGapNoDuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit(t, "q")
	a := b.start(t, id)
	// A producer keeps publishing while clients connect and resume.
	const n = 300
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; i < n; i++ {
			if err := a.Token(context.Background(), "answer", fmt.Sprint(i, " ")); err != nil {
				t.Errorf("token: %v", err)
				return
			}
		}
	}()
	var streams []*sseStream
	var resumeFrom []string
	for i := 0; i < 5; i++ {
		evs := b.events(t, id, "")
		from := evs[len(evs)/2].ID
		resumeFrom = append(resumeFrom, from)
		streams = append(streams, b.openSSE(t, "GET", eventsPath(id), nil, http.Header{"Last-Event-ID": {from}}))
	}
	<-produced
	complete(t, a, "done")
	for i, s := range streams {
		if diff := cmp.Diff(framesOf(b.events(t, id, resumeFrom[i])), s.rest(t)); diff != "" {
			t.Errorf("stream %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestEventsTrimmedResumeGetsSnapshot(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit(t, "q")
	a := b.start(t, id)
	token(t, a, "a")
	token(t, a, "b")
	evs := b.events(t, id, "")
	// The stream lost its first three events to trimming.
	if err := b.db.Client.XTrimMinID(context.Background(), jobs.EventsKey(id), evs[3].ID).Err(); err != nil {
		t.Fatal(err)
	}
	s := b.openSSE(t, "GET", eventsPath(id), nil, http.Header{"Last-Event-ID": {evs[0].ID}})
	f, _ := s.next(t)
	var snap jobBody
	if err := json.Unmarshal([]byte(f.Data), &snap); err != nil || f.Event != "snapshot" || f.ID != evs[3].ID || snap.Status != "running" || snap.ID != id {
		t.Fatalf("snapshot frame = %+v (%v)", f, err)
	}
	token(t, a, "c")
	complete(t, a, "abc")
	if diff := cmp.Diff(framesOf(b.events(t, id, evs[3].ID)), s.rest(t)); diff != "" {
		t.Errorf("after the snapshot (-want +got):\n%s", diff)
	}
	// An id the stream never had (from the future) is also answered with a
	// snapshot while the job runs; here the job has ended: nothing.
	if got := b.openSSE(t, "GET", eventsPath(id), nil, http.Header{"Last-Event-ID": {"99999999999999-0"}}).rest(t); len(got) != 0 {
		t.Errorf("future id on an ended job: %+v", got)
	}
}

func TestEventsBadLastEventID(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit(t, "q")
	for _, hdr := range []http.Header{{"Last-Event-ID": {"abc"}}, {"Last-Event-ID": {"1-2-3"}}, {"Last-Event-ID": {strings.Repeat("9", 50)}}} {
		resp, body := b.do(t, "GET", eventsPath(id), nil, hdr)
		if got := decode[v1Error](t, body); resp.StatusCode != 400 || got.Error.Field != "Last-Event-ID" {
			t.Errorf("%v: %d %s", hdr, resp.StatusCode, body)
		}
	}
	resp, body := b.do(t, "GET", eventsPath(id)+"?last_event_id=x", nil, nil)
	if got := decode[v1Error](t, body); resp.StatusCode != 400 || got.Error.Field != "last_event_id" {
		t.Errorf("bad query id: %d %s", resp.StatusCode, body)
	}
}

func TestEventsHeartbeatRechecksTheRecord(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{Heartbeat: 20 * time.Millisecond}})
	id := b.submit(t, "q")
	b.start(t, id)
	s := b.openSSE(t, "GET", eventsPath(id), nil, nil)
	for i := 0; i < 2; i++ {
		if f, _ := s.next(t); f.Event != "queued" && f.Event != "started" {
			t.Fatalf("frame %d = %+v", i, f)
		}
	}
	// The job ends without an event reaching anyone (written around the
	// script, as if the event were lost).
	ctx := context.Background()
	res, _ := json.Marshal(result("quiet"))
	if err := b.db.Client.HSet(ctx, jobs.JobKey(id), "status", "completed", "result", string(res),
		"finished_at", time.Now().UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	var comments int
	var frames []sseFrame
	for f := range s.frames {
		if f.Comment != "" {
			comments++
			continue
		}
		frames = append(frames, f)
	}
	if comments == 0 || len(frames) != 1 || frames[0].Event != "snapshot" || !strings.Contains(frames[0].Data, `"status":"completed"`) {
		t.Fatalf("heartbeats %d, frames %+v", comments, frames)
	}
}

func TestEventsEndWhenTheJobIsDeleted(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{Heartbeat: 20 * time.Millisecond}})
	id := b.submit(t, "q")
	s := b.openSSE(t, "GET", eventsPath(id), nil, nil)
	if f, _ := s.next(t); f.Event != "queued" {
		t.Fatalf("first frame %+v", f)
	}
	resp, _ := b.do(t, "DELETE", "/v1/jobs/"+id, nil, nil)
	if resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	// The stream ends: with the cancelled event, or (when a heartbeat finds
	// the record gone before the event arrives) without it, or (a heartbeat
	// read the cancelled record just before the delete removed its events)
	// with a snapshot of it.
	got := s.rest(t)
	if len(got) > 1 || len(got) == 1 && got[0].Event != "cancelled" && !(got[0].Event == "snapshot" && strings.Contains(got[0].Data, `"cancelled"`)) {
		t.Fatalf("after delete: %+v", got)
	}
}

// TestEventsSlowClientIsDropped: a client that stops reading is dropped by
// the hub (its buffer overflows) and its response ends, while another client
// of the same job gets every event.
func TestEventsSlowClientIsDropped(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit(t, "q")
	a := b.start(t, id)
	fast := b.openSSE(t, "GET", eventsPath(id), nil, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.url+eventsPath(id), nil)
	slow, err := b.http.Do(req)
	if err != nil || slow.StatusCode != 200 {
		t.Fatalf("open slow stream: %v", err)
	}
	defer slow.Body.Close()
	testwait.Until(t, "both streams to subscribe", func() bool { return b.hub.Subscribers() == 2 })

	// The fast client reads all along (a client that reads nothing until the
	// end is a slow client too, and could be the one dropped).
	fastCount := make(chan int, 1)
	go func() {
		k := 0
		for f := range fast.frames {
			if f.Event != "" || f.Data != "" {
				k++
			}
		}
		fastCount <- k
	}()

	// Large tokens fill the slow client's socket buffers, then its hub
	// buffer: the hub drops it, never blocking the fast one.
	big := strings.Repeat("x", 16<<10)
	n := 0
	for ; b.hub.Subscribers() == 2; n++ {
		if n > 100*store.DefaultSubscriberBuffer {
			t.Fatalf("the slow subscriber was not dropped after %d events", n)
		}
		token(t, a, big)
	}
	complete(t, a, "done")
	select {
	case got := <-fastCount:
		if got != n+3 {
			t.Errorf("fast client got %d frames, want %d", got, n+3)
		}
	case <-time.After(patience):
		t.Fatalf("the fast client's stream did not end within %v", patience)
	}
	// The slow client's response ends (without the terminal event).
	var body strings.Builder
	buf := make([]byte, 1<<20)
	for {
		k, err := slow.Body.Read(buf)
		body.Write(buf[:k])
		if err != nil {
			break
		}
	}
	if strings.Contains(body.String(), "event: completed") {
		t.Error("the dropped client still got the end")
	}
	if !strings.Contains(b.logs.String(), "subscriber too slow") {
		t.Error("the drop was not logged")
	}
}

// TestEventsSurvivePubSubReconnect kills the hub's pub/sub connection while a
// job publishes: events published before the hub has re-subscribed are lost
// on pub/sub, and the relay's re-read of the stream fills the gap.
func TestEventsSurvivePubSubReconnect(t *testing.T) {
	t.Parallel()
	db := redistest.NewServer(t) // CLIENT KILL must not touch other tests
	b := setup(t, options{db: db})
	id := b.submit(t, "q")
	a := b.start(t, id)
	s := b.openSSE(t, "GET", eventsPath(id), nil, nil)
	for i := 0; i < 2; i++ {
		s.next(t)
	}
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		if err := db.Client.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50; i++ {
			token(t, a, fmt.Sprintf("r%d-%d ", round, i))
		}
	}
	// The end comes right away: lost while the hub reconnects (then the
	// resync re-reads it), or live just after the reconnect (then the gap
	// before it is filled first).
	complete(t, a, "done")
	all := b.events(t, id, "")
	if diff := cmp.Diff(framesOf(all[2:]), s.rest(t)); diff != "" {
		t.Fatalf("after reconnects (-want +got):\n%s", diff)
	}
	if !strings.Contains(b.logs.String(), "re-reading the stream after a pub/sub reconnect") {
		t.Error("the relay never re-read the stream")
	}
}

func TestShutdownTellsStreamsToReconnect(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{ReconnectDelay: 2500 * time.Millisecond}})
	id := b.submit(t, "q")
	s := b.openSSE(t, "GET", eventsPath(id), nil, nil)
	first, _ := s.next(t)
	// A long-poll in flight answers with the job as it is.
	polled := make(chan string, 1)
	go func() {
		resp, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait=60s", nil, nil)
		polled <- fmt.Sprint(resp.StatusCode, " ", decode[jobBody](t, body).Status)
	}()
	testwait.Until(t, "the long-poll to subscribe", func() bool { return b.hub.Subscribers() == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-polled; got != "200 queued" {
		t.Errorf("long-poll at shutdown: %s", got)
	}
	got := s.rest(t)
	want := []sseFrame{{ID: first.ID, HasID: true, Event: "reconnect", Retry: "2500",
		Data: `{"reason":"server shutting down; reconnect with Last-Event-ID"}`}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("frames at shutdown (-want +got):\n%s", diff)
	}
}
