package api

import (
	"encoding/json"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/telemetry"
)

// jobEvents is GET /v1/jobs/{id}/events: the job's events as Server-Sent
// Events, resumable with Last-Event-ID (header, or ?last_event_id=). Each
// frame carries id: (the stream id) and event: (the type); data: is the
// event's data. The stream ends after the terminal event; a client resuming
// past it gets nothing and the stream closes. On shutdown the last frame is
// event: reconnect, with a retry: hint. HEAD gets the stream's headers only.
func (s *Server) jobEvents(c *gin.Context) {
	after, err := parseLastEventID(c.GetHeader("Last-Event-ID"), c.Query("last_event_id"))
	if err != nil {
		s.respond(c, err)
		return
	}
	if !s.streams.begin() {
		s.respond(c, store.ErrHubClosed)
		return
	}
	defer s.streams.end()
	ctx := c.Request.Context()
	rctx, cancel := s.redisCtx(c)
	j, err := s.loadJob(rctx, c)
	cancel()
	if err != nil {
		s.respond(c, err)
		return
	}
	if isHead(c) {
		sseHeaders(c)
		return
	}
	f, err := store.Follow(ctx, s.followConfig(), s.deps.Store.Source(j.ID), after)
	if err != nil {
		s.respond(c, err)
		return
	}
	defer f.Close()
	s.metrics.streams.WithLabelValues("events").Inc()
	defer s.metrics.streams.WithLabelValues("events").Dec()
	out := &eventSink{w: s.startSSE(c), retry: s.cfg.ReconnectDelay}
	// Its own trace (this request's), linked to the job's.
	rctx, relay := s.startRelay(ctx, j.Spec.Trace, telemetry.JobID.String(j.ID))
	end, err := f.Run(rctx, out, nil)
	relay.end(ctx, out.events, end, err)
	if err != nil {
		_ = c.Error(err)
	}
	if end == store.EndSlow {
		_ = c.Error(store.ErrSlowSubscriber)
	}
}

// eventSink renders the /v1 event stream.
type eventSink struct {
	w     *sseWriter
	retry time.Duration
	// events counts the events relayed (for the relay's span).
	events int
}

func (o *eventSink) Event(ev jobs.Event) error {
	o.events++
	data := string(ev.Data)
	if data == "" {
		data = "{}"
	}
	return o.w.write(frame(ev.ID, string(ev.Type), data, 0))
}

// Snapshot is event: snapshot, carrying the job as GET /v1/jobs/{id} shows
// it; its id stands for the stream up to that point.
func (o *eventSink) Snapshot(j *jobs.Job, id string) error {
	b, err := json.Marshal(viewOf(j))
	if err != nil {
		return err
	}
	if id == "" {
		id = "0"
	}
	return o.w.write(frame(id, "snapshot", string(b), 0))
}

func (o *eventSink) Heartbeat() error { return o.w.write(": heartbeat\n\n") }

func (o *eventSink) Hold()        { o.w.hold() }
func (o *eventSink) Flush() error { return o.w.flush() }

func (o *eventSink) Reconnect(last string) error {
	if last == "" {
		last = "0"
	}
	return o.w.write(frame(last, "reconnect", `{"reason":"server shutting down; reconnect with Last-Event-ID"}`, o.retry))
}
