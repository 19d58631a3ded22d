package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// serveMonitoring serves the dashboard (behind authenticate's admin check)
// with its page policy and a same-origin check on every state-changing
// request: with Basic auth a browser sends the credentials on its own, so a
// cross-site form could otherwise pause queues or delete tasks when the
// dashboard is writable (MonitoringWritable). net/http's
// CrossOriginProtection rejects a non-GET whose Sec-Fetch-Site is not
// same-origin or, lacking that, whose Origin is not this host; requests that
// carry neither come from tools, not browsers, and pass. In read-only mode
// asynqmon answers every non-GET with 405 anyway.
func (s *Server) serveMonitoring() gin.HandlerFunc {
	csp := monitoringCSP(s.monitor)
	cop := http.NewCrossOriginProtection()
	serve := gin.WrapH(newOfflineIndex(s.monitor))
	return func(c *gin.Context) {
		if err := cop.Check(c.Request); err != nil {
			s.respond(c, &apiError{status: http.StatusForbidden, code: "cross_origin",
				message: "cross-origin request refused", detail: "Cross-origin request refused", cause: err})
			return
		}
		c.Header("Content-Security-Policy", csp)
		serve(c)
	}
}
