package api

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
)

// writeJSON writes v as JSON without HTML escaping (answers keep their < and
// &, as FastAPI's JSONResponse does).
func writeJSON(c *gin.Context, status int, v any) {
	e := jsonEncoders.Get().(*jsonEncoder)
	defer e.release()
	if err := e.enc.Encode(v); err != nil {
		// Only our own response structs get here.
		panic(fmt.Sprintf("api: encode %T: %v", v, err))
	}
	c.Writer.Header()["Content-Type"] = jsonContentType
	c.Status(status)
	_, _ = c.Writer.Write(e.buf.Bytes())
}

// jsonEncoder is an Encoder and its buffer, reused across responses: the
// writer copies what it is given, so the buffer is free once Write returns.
type jsonEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var jsonEncoders = sync.Pool{New: func() any {
	e := &jsonEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// maxPooledJSON is the largest buffer kept for reuse; a rare large answer
// (a batch listing) does not pin its memory.
const maxPooledJSON = 64 << 10

func (e *jsonEncoder) release() {
	if e.buf.Cap() > maxPooledJSON {
		return
	}
	e.buf.Reset()
	jsonEncoders.Put(e)
}

const requestIDHeader = "X-Request-ID"

// requestID takes the client's X-Request-ID when it is a sane token, or makes
// one; it is echoed on the response and carried by the request's logger.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader(requestIDHeader)
	if !validRequestID(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Header(requestIDHeader, id)
	log := s.log.With().Str("request_id", id).Logger()
	c.Request = c.Request.WithContext(log.WithContext(c.Request.Context()))
	c.Next()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return false
		}
	}
	return true
}

// routeOf is the route pattern of a request, for logs and metric labels (a
// bounded set: never the raw path).
func routeOf(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// The longest method and path the access log writes: a client chooses them,
// up to the server's header limit (1 MB).
const (
	maxLoggedMethod = 32
	maxLoggedPath   = 512
)

// accessLog logs every request once, with the error that ended it, and
// records the HTTP metrics. It never logs headers or bodies.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	elapsed := time.Since(start)
	status := c.Writer.Status()
	route := routeOf(c)
	s.metrics.observeHTTP(route, c.Request.Method, status, elapsed)

	log := zerolog.Ctx(c.Request.Context())
	level := zerolog.InfoLevel
	switch {
	case status >= 500:
		level = zerolog.ErrorLevel
	case status == statusClientClosed:
		// The client left: nothing to warn about.
	case status >= 400:
		level = zerolog.WarnLevel
	}
	var ev *zerolog.Event
	if c.GetBool(authFailedKey) {
		ev = s.authLog.event(log, level)
	} else {
		ev = log.WithLevel(level)
	}
	if !ev.Enabled() {
		return // below the log level: no fields to build (the client IP is parsed)
	}
	if err := c.Errors.Last(); err != nil {
		ev = ev.AnErr("error", err.Err)
	}
	ev.Str("method", truncate(c.Request.Method, maxLoggedMethod)).
		Str("route", route).
		Str("path", truncate(c.Request.URL.Path, maxLoggedPath)).
		Int("status", status).
		Float64("latency_ms", float64(elapsed.Microseconds())/1000).
		Int("bytes", c.Writer.Size()).
		Str("client_ip", c.ClientIP()).
		Msg("request")
}

// recovery turns a panic into a logged 500 with a JSON body. The log gets
// the panic and where it happened (function, file:line), not a stack trace
// (issue 8: no stack traces in logs or answers); the client gets neither.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler {
			panic(r)
		}
		zerolog.Ctx(c.Request.Context()).Error().
			Str("panic", fmt.Sprint(r)).Str("panic_at", panicSite()).Msg("handler panicked")
		s.respond(c, errors.New("panic: "+fmt.Sprint(r)))
	}()
	c.Next()
}

// panicSite is the frame that panicked, called from a deferred recover: the
// first frame after the runtime's panic machinery.
func panicSite() string {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	inPanic := false
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, "runtime.") {
			inPanic = true
		} else if inPanic {
			return fmt.Sprintf("%s (%s:%d)", f.Function, filepath.Base(f.File), f.Line)
		}
		if !more {
			return "unknown"
		}
	}
}

// noRoute and noMethod answer in JSON, in the route's style.
func (s *Server) noRoute(c *gin.Context) {
	if s.monitor != nil && c.Request.URL.Path == monitoringRoot && (c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead) {
		// The one trailing-slash redirect kept (routes turns gin's off):
		// the dashboard's address as people type it.
		c.Redirect(http.StatusMovedPermanently, monitoringRoot+"/")
		return
	}
	s.respond(c, &apiError{status: http.StatusNotFound, code: "not_found", message: "no such endpoint", detail: "Not Found"})
}

func (s *Server) noMethod(c *gin.Context) {
	s.respond(c, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
		message: "method " + c.Request.Method + " is not allowed here", detail: "Method Not Allowed"})
}

// writeDeadline sets the deadline for writing the whole answer, after any
// wait the handler is about to do.
func (s *Server) writeDeadline(c *gin.Context, wait time.Duration) {
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(wait + s.cfg.WriteTimeout))
}

// owner is who the request acts for: the API key's name once authentication
// exists (issue 8); "" (anonymous) until then.
func owner(c *gin.Context) string {
	return c.GetString(ownerKey)
}

// ownerKey is the gin context key an authentication middleware sets.
const ownerKey = "qa.owner"

func itoa(n int) string { return strconv.Itoa(n) }
