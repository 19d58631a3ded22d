package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/store"
)

// The event streams relay a follow (store.Follow): this file holds what is
// HTTP about them, the frames and how they are written.

// followConfig is what the server's follows share: shutdown ends them.
func (s *Server) followConfig() store.FollowConfig {
	return store.FollowConfig{Hub: s.deps.Hub, Timeout: s.cfg.RedisTimeout, Heartbeat: s.cfg.Heartbeat, Stop: s.draining}
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
