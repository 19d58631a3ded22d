package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/telemetry"
)

// resultsChunk is how many result slots one read covers.
const resultsChunk = 1000

// resultsRecheck bounds how long a following results download trusts
// pub/sub alone before it re-reads the slots.
const resultsRecheck = 2 * time.Second

// results is GET /v1/batches/{id}/results: JSONL in input order, one line
// per finished item, from the item ?offset= (default 0). With ?wait=true it
// follows the batch to its end: it waits at the first unfinished item, and
// once the batch has ended it skips items that never ran (cancelled before
// their start, expired). Following a batch that has not ended is a stream:
// it holds one of the key's SSE_MAX_STREAMS_PER_KEY, sends an empty line
// each heartbeat while it waits, and lasts at most BATCH_RESULTS_MAX_WAIT.
// A response that ends before the results do (that limit, a shutdown, a
// failed read) ends with a continue line: where to ask again from. HEAD
// gets the headers without reading any result.
func (h *batchHandlers) results(c *gin.Context) {
	s := h.s
	follow, err := parseFollow(c.Query("wait"))
	if err != nil {
		h.fail(c, err)
		return
	}
	rctx, cancel := s.redisCtx(c)
	b, err := h.load(rctx, c)
	cancel()
	if err != nil {
		h.fail(c, err)
		return
	}
	offset, err := parseResultsOffset(c.Query("offset"), b.Counts.Total)
	if err != nil {
		h.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	var f *resultsFollow
	if follow && !b.Status.Terminal() && !isHead(c) {
		if f, err = h.followResults(c, b.ID); err != nil {
			h.fail(c, err)
			return
		}
		defer f.close()
	}
	w := &resultsWriter{c: c, rc: http.NewResponseController(c.Writer), timeout: s.cfg.WriteTimeout}
	w.start(f != nil)
	if isHead(c) {
		return
	}
	cursor, ended := offset, !follow || b.Status.Terminal()
	for cursor < b.Counts.Total {
		next, err := h.writeResults(ctx, w, b.ID, cursor, b.Counts.Total, ended)
		cursor = next
		if err != nil {
			_ = c.Error(err)
			w.resume(b.ID, follow, cursor, "error")
			return
		}
		if cursor >= b.Counts.Total {
			return
		}
		// Waiting at an unfinished item: until an event, a recheck, the
		// end of the request, the maximum duration or shutdown. Only a
		// download that follows gets here (f is set): one that does not
		// skips unfinished items and has reached the end.
		switch until, reason := f.wait(ctx, w); until {
		case waitGone:
			return
		case waitCut:
			w.resume(b.ID, follow, cursor, reason)
			return
		}
		rctx, cancel := s.redisCtx(c)
		nb, err := h.b.Get(rctx, b.ID)
		cancel()
		if err != nil {
			_ = c.Error(err)
			w.resume(b.ID, follow, cursor, "error")
			return
		}
		ended = nb.Status.Terminal()
	}
}

// parseFollow reads ?wait= of a results download.
func parseFollow(v string) (bool, error) {
	switch v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: "wait",
		message: "wait must be true or false"}
}

// parseResultsOffset reads ?offset=: the index of the first item to send,
// from 0 to the batch's item count.
func parseResultsOffset(v string, total int) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > total {
		return 0, &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: "offset",
			message: fmt.Sprintf("offset must be an item index from 0 to %d (the batch's item count)", total)}
	}
	return n, nil
}

// writeResults writes the finished results from cursor on, in order, and
// returns where it stopped: at to, or (unless skipGaps) at the first item
// without a result.
func (h *batchHandlers) writeResults(ctx context.Context, w *resultsWriter, id string, cursor, to int, skipGaps bool) (int, error) {
	for cursor < to {
		rctx, cancel := context.WithTimeout(ctx, h.s.cfg.RedisTimeout)
		lines, err := h.b.Results(rctx, id, cursor, min(cursor+resultsChunk, to))
		cancel()
		if err != nil {
			return cursor, err
		}
		buf := make([]byte, 0, 64<<10)
		stopped := false
		for _, l := range lines {
			if l == "" && !skipGaps {
				stopped = true
				break
			}
			if l != "" {
				buf = append(append(buf, l...), '\n')
			}
			cursor++
		}
		if len(buf) > 0 {
			if err := w.write(buf); err != nil {
				return cursor, err
			}
		}
		if stopped {
			return cursor, nil
		}
	}
	return cursor, nil
}

// resultsWriter writes a results download, flushing each write, with a
// write deadline per write rather than one for the whole response.
type resultsWriter struct {
	c       *gin.Context
	rc      *http.ResponseController
	timeout time.Duration
}

// start sets the headers; a stream sends them at once, so its client knows
// it holds its place before any result is ready.
func (w *resultsWriter) start(stream bool) {
	w.c.Header("Content-Type", "application/x-ndjson")
	w.c.Header("X-Accel-Buffering", "no")
	w.c.Status(http.StatusOK)
	if stream {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
		w.c.Writer.WriteHeaderNow()
		_ = w.rc.Flush()
	}
}

func (w *resultsWriter) write(b []byte) error {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	if _, err := w.c.Writer.Write(b); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := w.rc.Flush(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// heartbeat is an empty line: JSONL readers skip it (NDJSON allows it), and
// proxies see the connection is alive.
func (w *resultsWriter) heartbeat() error { return w.write([]byte("\n")) }

// resultsContinue is the last line of a download that ended before its
// results did: ask again at Next (the same request from item Offset on).
type resultsContinue struct {
	Object string `json:"object"`
	Offset int    `json:"offset"`
	Next   string `json:"next"`
	// Reason is max_wait (BATCH_RESULTS_MAX_WAIT passed), shutdown (this
	// server is stopping) or error (a read failed: retry after a moment).
	Reason string `json:"reason"`
}

// resume writes the continue line. A failed write is not reported: the
// client is gone, or will see a response cut mid-line.
func (w *resultsWriter) resume(id string, follow bool, offset int, reason string) {
	next := "/v1/batches/" + id + "/results?"
	if follow {
		next += "wait=true&"
	}
	next += "offset=" + strconv.Itoa(offset)
	line, err := json.Marshal(resultsContinue{Object: "batch.results.continue", Offset: offset, Next: next, Reason: reason})
	if err != nil {
		panic(fmt.Sprintf("api: encode results continue: %v", err)) // a struct of strings and an int
	}
	_ = w.write(append(line, '\n'))
}

// resultsFollow is what a results download that waits holds: its stream
// lease, its place in the shutdown drain, the batch's follow (from now: the
// download reads the slots, not the events) and when its maximum duration
// ends.
type resultsFollow struct {
	s        *Server
	lease    *lease
	f        *store.Follower[*jobs.Batch]
	deadline time.Time
}

// followResults opens what a results download that waits holds: a stream
// lease (429 beyond SSE_MAX_STREAMS_PER_KEY) and the batch's follow.
// Errors come before anything is written. Close it when done.
func (h *batchHandlers) followResults(c *gin.Context, id string) (*resultsFollow, error) {
	s := h.s
	l, err := s.openStream(c)
	if err != nil {
		return nil, err
	}
	if !s.streams.begin() {
		l.release()
		return nil, store.ErrHubClosed
	}
	f, err := store.Follow(c.Request.Context(), s.followConfig(), h.b.Source(id), store.FromNow)
	if err != nil {
		s.streams.end()
		l.release()
		return nil, err
	}
	s.metrics.streams.WithLabelValues("batch_results").Inc()
	return &resultsFollow{s: s, lease: l, f: f, deadline: time.Now().Add(s.cfg.BatchResultsMaxWait)}, nil
}

func (f *resultsFollow) close() {
	f.f.Close()
	f.s.metrics.streams.WithLabelValues("batch_results").Dec()
	f.s.streams.end()
	f.lease.release()
}

// waitUntil says why a results download stopped waiting.
type waitUntil int

const (
	waitMoved waitUntil = iota // an event, a resync or the recheck: read again
	waitCut                    // the download must end early: tell the client where to resume
	waitGone                   // the client went away
)

// wait waits for the batch to move, sending heartbeats meanwhile, and at
// most resultsRecheck: items finish between the (throttled) progress
// events. A follow the hub dropped cuts the download; the next request
// opens it again.
func (f *resultsFollow) wait(ctx context.Context, w *resultsWriter) (waitUntil, string) {
	recheck := time.NewTimer(min(resultsRecheck, time.Until(f.deadline)))
	defer recheck.Stop()
	end, err := f.f.Run(ctx, resultsSink{w}, recheck.C)
	switch {
	case ctx.Err() != nil:
		return waitGone, ""
	case end == store.EndReconnect:
		return waitCut, "shutdown"
	case end == store.EndSlow:
		return waitCut, "error"
	case err != nil:
		return waitGone, "" // a heartbeat could not be written
	case end == store.EndTimeout && !time.Now().Before(f.deadline):
		return waitCut, "max_wait"
	}
	return waitMoved, ""
}

// resultsSink is a results download's sink: any news of the batch (an
// event, or its record after a resync or at its end) means the slots may
// have moved; heartbeats are empty lines.
type resultsSink struct{ w *resultsWriter }

func (o resultsSink) Event(jobs.Event) error             { return store.ErrStop }
func (o resultsSink) Snapshot(*jobs.Batch, string) error { return store.ErrStop }
func (o resultsSink) Heartbeat() error                   { return o.w.heartbeat() }
func (o resultsSink) Hold()                              {}
func (o resultsSink) Flush() error                       { return nil }
func (o resultsSink) Reconnect(string) error             { return nil }

// batchSink renders a batch's event stream: the jobs' frames, with the batch
// as the snapshot.
type batchSink struct{ *eventSink }

func (o batchSink) Snapshot(b *jobs.Batch, id string) error {
	data, err := json.Marshal(batchViewOf(b))
	if err != nil {
		return err
	}
	if id == "" {
		id = "0"
	}
	return o.w.write(frame(id, "snapshot", string(data), 0))
}

// events is GET /v1/batches/{id}/events: progress events (throttled) and a
// terminal event, as Server-Sent Events with the jobs' replay and
// Last-Event-ID rules (the relay in sse.go). HEAD gets the stream's headers
// only.
func (h *batchHandlers) events(c *gin.Context) {
	s := h.s
	after, err := parseLastEventID(c.GetHeader("Last-Event-ID"), c.Query("last_event_id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	if !s.streams.begin() {
		h.fail(c, store.ErrHubClosed)
		return
	}
	defer s.streams.end()
	ctx := c.Request.Context()
	rctx, cancel := s.redisCtx(c)
	b, err := h.load(rctx, c)
	cancel()
	if err != nil {
		h.fail(c, err)
		return
	}
	if isHead(c) {
		sseHeaders(c)
		return
	}
	f, err := store.Follow(ctx, s.followConfig(), h.b.Source(b.ID), after)
	if err != nil {
		h.fail(c, err)
		return
	}
	defer f.Close()
	s.metrics.streams.WithLabelValues("batch_events").Inc()
	defer s.metrics.streams.WithLabelValues("batch_events").Dec()
	out := batchSink{&eventSink{w: s.startSSE(c), retry: s.cfg.ReconnectDelay}}
	// Its own trace (this request's), linked to the batch's.
	rctx, relay := s.startRelay(ctx, b.Spec.Trace, telemetry.BatchID.String(b.ID))
	end, err := f.Run(rctx, out, nil)
	relay.end(ctx, out.events, end, err)
	if err != nil {
		_ = c.Error(err)
	}
	if end == store.EndSlow {
		_ = c.Error(store.ErrSlowSubscriber)
	}
}

// formatBatchPayload shows a batch task readably in the dashboard: the batch
// id, the item's index, custom_id and retry round.
func formatBatchPayload(taskType string, payload []byte) (string, bool) {
	switch taskType {
	case jobs.TaskTypeBatchItem:
		p, err := jobs.ParseBatchItemPayload(payload)
		if err != nil {
			return "unreadable payload: " + truncate(printable(string(payload)), 200), true
		}
		view := map[string]any{"batch_id": p.Batch, "index": p.Index, "custom_id": truncate(printable(p.CustomID), 256)}
		if p.Round > 0 {
			view["round"] = p.Round
		}
		return indent(view), true
	case jobs.TaskTypeBatchExpand, jobs.TaskTypeBatchCheck:
		var p jobs.BatchTaskPayload
		if err := json.Unmarshal(payload, &p); err != nil {
			return "unreadable payload: " + truncate(printable(string(payload)), 200), true
		}
		return indent(map[string]any{"batch_id": p.BatchID}), true
	}
	return "", false
}
