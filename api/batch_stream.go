package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
)

// resultsChunk is how many result slots one read covers.
const resultsChunk = 1000

// resultsRecheck bounds how long a following results download trusts
// pub/sub alone before it re-reads the slots.
const resultsRecheck = 2 * time.Second

// results is GET /v1/batches/{id}/results: JSONL in input order, one line
// per finished item. With ?wait=true it follows the batch to its end: it
// waits at the first unfinished item, and once the batch has ended it skips
// items that never ran (cancelled before their start, expired).
func (h *batchHandlers) results(c *gin.Context) {
	s := h.s
	follow := c.Query("wait") == "true"
	rctx, cancel := s.redisCtx(c)
	b, err := h.load(rctx, c)
	cancel()
	if err != nil {
		h.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	var sub *jobs.Subscription
	if follow && !b.Status.Terminal() {
		if !s.streams.begin() {
			h.fail(c, jobs.ErrHubClosed)
			return
		}
		defer s.streams.end()
		sctx, cancel := context.WithTimeout(ctx, s.cfg.RedisTimeout)
		sub, err = s.deps.Hub.Subscribe(sctx, jobs.BatchChannel(b.ID))
		cancel()
		if err != nil {
			h.fail(c, err)
			return
		}
		defer sub.Close()
	}
	c.Header("Content-Type", "application/x-ndjson")
	c.Header("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	rc := http.NewResponseController(c.Writer)
	ended := !follow || b.Status.Terminal()
	for cursor := 0; cursor < b.Counts.Total; {
		next, err := h.writeResults(ctx, c, rc, b.ID, cursor, b.Counts.Total, ended)
		if err != nil {
			_ = c.Error(err)
			return
		}
		cursor = next
		if cursor >= b.Counts.Total {
			return
		}
		// Waiting at an unfinished item: until an event, a recheck, the
		// end of the request or shutdown.
		if !h.waitResults(ctx, sub) {
			return
		}
		rctx, cancel := s.redisCtx(c)
		nb, err := h.b.Get(rctx, b.ID)
		cancel()
		if err != nil {
			_ = c.Error(err)
			return
		}
		ended = nb.Status.Terminal()
	}
}

// writeResults writes the finished results from cursor on, in order, and
// returns where it stopped: at to, or (unless skipGaps) at the first item
// without a result.
func (h *batchHandlers) writeResults(ctx context.Context, c *gin.Context, rc *http.ResponseController, id string, cursor, to int, skipGaps bool) (int, error) {
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
			_ = rc.SetWriteDeadline(time.Now().Add(h.s.cfg.WriteTimeout))
			if _, err := c.Writer.Write(buf); err != nil {
				return cursor, err
			}
			_ = rc.Flush()
		}
		if stopped {
			return cursor, nil
		}
	}
	return cursor, nil
}

// waitResults waits for the batch to move; false: stop (client gone,
// shutdown, or the subscription dropped).
func (h *batchHandlers) waitResults(ctx context.Context, sub *jobs.Subscription) bool {
	if sub == nil {
		return false
	}
	t := time.NewTimer(resultsRecheck)
	defer t.Stop()
	select {
	case _, ok := <-sub.C():
		return ok
	case <-sub.Resync():
		return true
	case <-t.C:
		return true
	case <-h.s.draining:
		return false
	case <-ctx.Done():
		return false
	}
}

// batchSource follows a batch's events.
type batchSource struct {
	b  *jobs.Batches
	id string
}

func (b batchSource) channel() string   { return jobs.BatchChannel(b.id) }
func (b batchSource) eventsKey() string { return jobs.BatchEventsKey(b.id) }
func (b batchSource) load(ctx context.Context) (*jobs.Batch, error) {
	bt, err := b.b.Get(ctx, b.id)
	if errors.Is(err, jobs.ErrBatchNotFound) {
		return nil, jobs.ErrNotFound
	}
	return bt, err
}
func (b batchSource) ended(r *jobs.Batch) bool { return r.Status.Terminal() }
func (b batchSource) events(ctx context.Context, after string) ([]jobs.Event, error) {
	return b.b.Events(ctx, b.id, after)
}

// batchSink renders a batch's event stream: the jobs' frames, with the batch
// as the snapshot.
type batchSink struct{ *eventSink }

func (o batchSink) snapshot(b *jobs.Batch, id string) error {
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
// Last-Event-ID rules (the relay in sse.go).
func (h *batchHandlers) events(c *gin.Context) {
	s := h.s
	after, err := parseLastEventID(c.GetHeader("Last-Event-ID"), c.Query("last_event_id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	if !s.streams.begin() {
		h.fail(c, jobs.ErrHubClosed)
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
	f, err := openSource(ctx, s, b.ID, followSource[*jobs.Batch](batchSource{b: h.b, id: b.ID}), after)
	if err != nil {
		h.fail(c, err)
		return
	}
	defer f.Close()
	s.metrics.streams.WithLabelValues("batch_events").Inc()
	defer s.metrics.streams.WithLabelValues("batch_events").Dec()
	out := batchSink{&eventSink{w: s.startSSE(c), retry: s.cfg.ReconnectDelay}}
	end, err := f.run(ctx, out, nil)
	if err != nil {
		_ = c.Error(err)
	}
	if end == endSlow {
		_ = c.Error(jobs.ErrSlowSubscriber)
	}
}

// formatBatchPayload shows a batch task readably in the dashboard: the batch
// id, the item's index and custom_id.
func formatBatchPayload(taskType string, payload []byte) (string, bool) {
	switch taskType {
	case jobs.TaskTypeBatchItem:
		var p jobs.BatchItemPayload
		if err := json.Unmarshal(payload, &p); err != nil {
			return "unreadable payload: " + truncate(printable(string(payload)), 200), true
		}
		view := map[string]any{"batch_id": p.Batch.ID, "index": p.Batch.Index, "custom_id": truncate(printable(p.Batch.CustomID), 256)}
		if p.Owner != "" {
			view["owner"] = p.Owner
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
