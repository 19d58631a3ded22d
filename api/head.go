package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// HEAD: every GET route answers HEAD too, with the status and headers its GET
// would give and no body (RFC 9110 §9.3.2). gin routes HEAD only where it is
// registered, so GET routes are registered through getRoute, which adds it;
// net/http drops the body written to a HEAD. Handlers that stream or wait
// check isHead and send their headers at once: no stream, no lease, no wait.

// getAndHead are the methods a GET route answers.
var getAndHead = []string{http.MethodGet, http.MethodHead}

// getRoute registers a GET route and its HEAD.
func getRoute(g gin.IRoutes, path string, handlers ...gin.HandlerFunc) {
	g.Match(getAndHead, path, handlers...)
}

// isHead reports a HEAD request, which wants the headers only.
func isHead(c *gin.Context) bool { return c.Request.Method == http.MethodHead }
