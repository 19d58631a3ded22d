package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/internal/redisconn"
	"github.com/qaqueue/qaqueue/store"
)

// apiError is an error with its HTTP answer. Handlers return it (or any
// error, which respond classifies); respond writes it in the style of the
// route: {"error": {...}} on /v1, FastAPI's {"detail": ...} elsewhere.
type apiError struct {
	status int
	// code is the stable machine-readable reason of the /v1 body.
	code    string
	message string
	// field names the request field at fault, if any.
	field      string
	retryAfter time.Duration
	// fields are validation failures, rendered as FastAPI's detail list on
	// the seed's endpoints.
	fields []fieldError
	// detail overrides message in the seed's {"detail": ...} body.
	detail string
	cause  error
	// logText, when set, is what the log records instead of message: a
	// failed job's reason may quote the LM's answer (Config.LogQuestions).
	logText string
}

func (e *apiError) Error() string {
	msg := e.message
	if e.logText != "" {
		msg = e.logText
	}
	if e.cause != nil {
		return msg + ": " + e.cause.Error()
	}
	return msg
}

func (e *apiError) Unwrap() error { return e.cause }

// fieldError is one validation failure, in pydantic's terms.
type fieldError struct {
	Loc  []any          `json:"loc"`
	Msg  string         `json:"msg"`
	Type string         `json:"type"`
	Ctx  map[string]any `json:"ctx,omitempty"`
}

// field is the dotted name of the field at fault, without the leading "body".
func (f fieldError) field() string {
	parts := make([]string, 0, len(f.Loc))
	for i, p := range f.Loc {
		if i == 0 && p == "body" {
			continue
		}
		parts = append(parts, fmt.Sprint(p))
	}
	return strings.Join(parts, ".")
}

func validationError(fields ...fieldError) *apiError {
	f := fields[0]
	if f.Type == "json_invalid" {
		return &apiError{status: http.StatusUnprocessableEntity, code: "invalid_json",
			message: fmt.Sprintf("request body is not valid JSON: %v", f.Ctx["error"]), fields: fields}
	}
	msg := f.Msg
	if name := f.field(); name != "" {
		msg = name + ": " + msg
	}
	return &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", message: msg, field: f.field(), fields: fields}
}

func errNotFound(what string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "not_found", message: what + " not found"}
}

// errClientGone marks a request whose client went away; nothing is written.
var errClientGone = errors.New("client closed the request")

// statusClientClosed is what the access log records for a client that left
// before its answer (nginx's 499).
const statusClientClosed = 499

// classify turns any error into the answer to give.
func (s *Server) classify(ctx context.Context, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
			message: fmt.Sprintf("request body exceeds %d bytes", mbe.Limit), detail: "Request body too large", cause: err}
	case errors.Is(err, errClientGone) || (ctx.Err() != nil && errors.Is(err, context.Canceled)):
		return &apiError{status: statusClientClosed, code: "client_closed", message: "client closed the request", cause: err}
	case errors.Is(err, store.ErrNotFound):
		return errNotFound("job")
	case errors.Is(err, store.ErrQueueFull):
		return &apiError{status: http.StatusServiceUnavailable, code: "queue_full",
			message: "too many questions are waiting; retry later", retryAfter: s.cfg.BusyRetryAfter, cause: err}
	case errors.Is(err, store.ErrIdempotencyInProgress):
		return &apiError{status: http.StatusConflict, code: "idempotency_in_progress", field: "Idempotency-Key",
			message: "a request with this Idempotency-Key is still being accepted; retry later", retryAfter: time.Second, cause: err}
	case errors.Is(err, store.ErrIdempotencyMismatch):
		return &apiError{status: http.StatusUnprocessableEntity, code: "idempotency_mismatch", field: "Idempotency-Key",
			message: "this Idempotency-Key was already used with a different request body", cause: err}
	case errors.Is(err, store.ErrHubClosed):
		return &apiError{status: http.StatusServiceUnavailable, code: "shutting_down",
			message: "the server is shutting down; retry", retryAfter: s.cfg.ReconnectDelay, cause: err}
	case unavailable(err):
		return &apiError{status: http.StatusServiceUnavailable, code: "unavailable",
			message: "storage is unavailable; retry later", retryAfter: s.cfg.UnavailableRetryAfter, cause: err}
	}
	return &apiError{status: http.StatusInternalServerError, code: "internal", message: "internal error", detail: "Internal Server Error", cause: err}
}

// unavailable reports whether err means Redis could not be reached or cannot
// serve right now (as opposed to a bug or a bad request).
func unavailable(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || redisconn.Unavailable(err)
}

// errorStyle says how a route words its errors.
type errorStyle int

const (
	styleV1   errorStyle = iota // {"error": {"code", "message", "field"?}}
	styleSeed                   // FastAPI: {"detail": ...}
)

func styleOf(path string) errorStyle {
	if path == "/v1" || strings.HasPrefix(path, "/v1/") {
		return styleV1
	}
	return styleSeed
}

// respond is the one error responder: it records the error for the access
// log (which logs it, once) and writes the answer in the route's style.
func (s *Server) respond(c *gin.Context, err error) {
	ae := s.classify(c.Request.Context(), err)
	_ = c.Error(err)
	if ae.status == statusClientClosed {
		c.Status(statusClientClosed)
		c.Abort()
		return
	}
	if c.Writer.Written() {
		// A stream already started: its status is sent; the log records why
		// it ended.
		c.Abort()
		return
	}
	if ae.retryAfter > 0 {
		c.Header("Retry-After", retryAfter(ae.retryAfter))
	}
	switch styleOf(c.Request.URL.Path) {
	case styleV1:
		body := struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field,omitempty"`
		}{ae.code, ae.message, ae.field}
		writeJSON(c, ae.status, map[string]any{"error": body})
	default:
		var detail any = ae.message
		switch {
		case len(ae.fields) > 0:
			detail = ae.fields
		case ae.detail != "":
			detail = ae.detail
		}
		writeJSON(c, ae.status, map[string]any{"detail": detail})
	}
	c.Abort()
}

// retryAfter renders a Retry-After value in whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}
