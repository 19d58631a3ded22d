package api

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
)

// httpMetrics are the API's Prometheus collectors.
type httpMetrics struct {
	requests  *prometheus.CounterVec   // route, method, status
	duration  *prometheus.HistogramVec // route, method
	submitted *prometheus.CounterVec   // queue
	streams   *prometheus.GaugeVec     // kind: events, predict

	// series caches the requests and duration children of each route,
	// method and status answered, so a request does not hash its labels.
	series sync.Map // httpSeriesKey → httpSeries
}

type httpSeriesKey struct {
	route, method string
	status        int
}

type httpSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newHTTPMetrics(reg prometheus.Registerer, hub *store.Hub, insp *asynq.Inspector, log zerolog.Logger) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qa_http_requests_total", Help: "HTTP requests answered, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "qa_http_request_duration_seconds", Help: "HTTP request duration (streams: until they end), by route pattern and method.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route", "method"}),
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qa_jobs_submitted_total", Help: "Jobs accepted by this API process, by queue.",
		}, []string{"queue"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qa_sse_streams", Help: "Open event streams served by this API process, by kind.",
		}, []string{"kind"}),
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.submitted, err = register(reg, m.submitted); err != nil {
		return nil, err
	}
	if m.streams, err = register(reg, m.streams); err != nil {
		return nil, err
	}
	subs := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "qa_sse_subscribers", Help: "Subscriptions on this process's shared pub/sub hub (streams and waits).",
	}, func() float64 { return float64(hub.Subscribers()) })
	if _, err := register[prometheus.Collector](reg, subs); err != nil {
		return nil, err
	}
	if _, err := register[prometheus.Collector](reg, newQueueCollector(insp, log)); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the equal collector already registered
// (qa dev runs API and workers on one registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("api: register metrics: %w", err)
	}
	return c, nil
}

// observeHTTP records one answer. Every label takes its value from a fixed
// set (route patterns, methodLabel, statusLabel): a series lives for the
// process, so a value a client chooses would let it grow memory and
// /metrics without end.
func (m *httpMetrics) observeHTTP(route, method string, status int, d time.Duration) {
	key := httpSeriesKey{route: route, method: methodLabel(method), status: status}
	if status < 100 || status >= 600 {
		key.status = 0 // all "other"
	}
	v, ok := m.series.Load(key)
	if !ok {
		v, _ = m.series.LoadOrStore(key, httpSeries{
			requests: m.requests.WithLabelValues(key.route, key.method, statusLabel(status)),
			duration: m.duration.WithLabelValues(key.route, key.method),
		})
	}
	ser := v.(httpSeries)
	ser.requests.Inc()
	ser.duration.Observe(d.Seconds())
}

// methodLabel is a request method as a label: the methods of RFC 9110 and
// PATCH by name, any other (a client may invent them freely) "other".
func methodLabel(method string) string {
	if standardMethod(method) {
		return method
	}
	return "other"
}

// standardMethod reports whether method is one of RFC 9110's or PATCH:
// labels and span names keep those, and fold the rest into one value.
func standardMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return true
	}
	return false
}

// statusLabel is a status as a label: the statuses the API and what it
// mounts (file serving, the dashboard) answer by number, any other by class
// ("4xx").
func statusLabel(status int) string {
	switch status {
	case 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308,
		400, 401, 403, 404, 405, 406, 408, 409, 410, 412, 413, 415, 416, 422, 429, 431, statusClientClosed,
		500, 501, 502, 503, 504:
		return strconv.Itoa(status)
	}
	if status >= 100 && status < 600 {
		return strconv.Itoa(status/100) + "xx"
	}
	return "other"
}

// serveMetrics is GET /metrics: Prometheus text for scrapers (this process),
// or the seed's global JSON summary when the client asks for JSON.
func (s *Server) serveMetrics(c *gin.Context) {
	if s.cfg.DisableMetrics {
		s.respond(c, &apiError{status: http.StatusNotFound, code: "not_found", message: "Metrics disabled", detail: "Metrics disabled"})
		return
	}
	if wantsJSON(c.GetHeader("Accept")) {
		s.serveSummary(c)
		return
	}
	promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{ErrorLog: newStdLogger(s.log)}).ServeHTTP(c.Writer, c.Request)
}

// wantsJSON reports whether an Accept header prefers application/json to
// Prometheus text (a scraper's Accept names text/plain or openmetrics).
func wantsJSON(accept string) bool {
	best, bestQ := "", -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if q > bestQ {
			best, bestQ = mt, q
		}
	}
	return best == "application/json" && bestQ > 0
}
