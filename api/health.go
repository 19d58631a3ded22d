package api

import (
	"context"
	"log"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
)

// health is the seed's GET /health: {status, model, optimized}, plus demo,
// true when qa dev's demo LM makes the answers up. It does not touch Redis
// (see /readyz).
func (s *Server) health(c *gin.Context) {
	writeJSON(c, http.StatusOK, map[string]any{
		"status": "healthy", "model": s.deps.Health.Model, "optimized": s.deps.Health.Optimized,
		"demo": s.deps.Health.Demo,
	})
}

// livez answers while the process serves HTTP.
func (s *Server) livez(c *gin.Context) {
	writeJSON(c, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when Redis answers a PING, 503 otherwise. Workers are
// not required, so an autoscaler can start them from zero.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.RedisTimeout)
	defer cancel()
	if err := s.deps.Redis.Ping(ctx).Err(); err != nil {
		_ = c.Error(err)
		c.Header("Retry-After", retryAfter(s.cfg.UnavailableRetryAfter))
		writeJSON(c, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "redis": "unreachable"})
		return
	}
	writeJSON(c, http.StatusOK, map[string]string{"status": "ready", "redis": "ok"})
}

// newStdLogger sends net/http's own complaints (TLS handshakes, panics it
// caught) to zerolog.
func newStdLogger(l zerolog.Logger) *log.Logger {
	return log.New(l.With().Str("source", "net/http").Logger(), "", 0)
}
