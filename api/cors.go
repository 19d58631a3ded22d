package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// CORS (issue 8): off unless Config.CORSOrigins lists origins. An allowed
// origin gets its own name back (never "*": credentials are allowed) and the
// headers a browser client needs; any other origin gets no CORS headers, so
// the browser keeps the answer from the page. The dashboard and /metrics are
// same-origin only.

const (
	corsMethods       = "GET, POST, DELETE, OPTIONS"
	corsAllowHeaders  = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, X-Request-ID"
	corsExposeHeaders = "Location, Retry-After, X-Request-ID, Idempotent-Replayed, WWW-Authenticate"
	corsMaxAge        = 600 // seconds a browser may cache a preflight
)

// cors answers preflights and marks answers to allowed origins. It runs
// before authentication: a preflight carries no credentials.
func (s *Server) cors(c *gin.Context) {
	if len(s.corsOrigins) == 0 {
		return
	}
	switch s.accessOf(c.Request.URL.Path) {
	case accessMetrics, accessDashboard:
		return
	}
	h := c.Writer.Header()
	h.Add("Vary", "Origin")
	origin := c.GetHeader("Origin")
	preflight := c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != ""
	if preflight {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	if origin == "" || !s.corsOrigins[origin] {
		if preflight {
			// Not an allowed origin: no CORS headers, so the browser refuses.
			c.AbortWithStatus(http.StatusForbidden)
		}
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	if !preflight {
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		return
	}
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", strconv.Itoa(corsMaxAge))
	c.AbortWithStatus(http.StatusNoContent)
}

// originSet indexes the allowed origins; a "*" never gets in (Config
// validation refuses it).
func originSet(origins []string) map[string]bool {
	set := make(map[string]bool, len(origins))
	for _, o := range origins {
		if o = strings.TrimSpace(o); o != "" {
			set[o] = true
		}
	}
	return set
}
