package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/programs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// HealthInfo is what GET /health reports besides the status: the seed's
// {model, optimized}, and demo.
type HealthInfo struct {
	// Model is the DSPy model string the workers use (DSPY_MODEL).
	Model string
	// Optimized is true when the workers load an optimized program state
	// (PROGRAM_STATE_PATH).
	Optimized bool
	// Demo is true when the demo LM of qa dev answers (no LM is
	// configured): the answers are made up.
	Demo bool
}

// Deps are the API's collaborators, made and closed by the caller.
type Deps struct {
	// Redis is the queue's Redis (required): readiness, the metrics summary
	// and the queue gauges use it.
	Redis redis.UniversalClient
	// Client submits, cancels and deletes jobs (required).
	Client *store.Client
	// Store reads job records and events (required).
	Store *store.Jobs
	// Hub is the process's one shared pub/sub connection (required); the
	// caller runs it (Hub.Run) and closes it after Server.Shutdown.
	Hub *store.Hub
	// Programs is the program registry (required): submits resolve their
	// program through it, and /v1/programs serves it. The caller runs it
	// (Registry.Run), which keeps its alias cache fresh.
	Programs *programs.Registry
	// Batches stores and reads batches for /v1/batches (required), on
	// Store's Redis, configured as the workers' (BATCH_RESULT_TTL,
	// BATCH_COMPLETION_WINDOW) and with the per-key quotas.
	Batches *batches.Store
	// Log receives the access log and errors; each request's logger adds
	// request_id.
	Log zerolog.Logger
	// Registry receives the API's Prometheus collectors and is what
	// GET /metrics serves. Nil: a private registry with the Go and process
	// collectors.
	Registry *prometheus.Registry
	// AsynqRedis is how asynqmon connects (it opens its own pools). Nil:
	// derived from Redis when that is a *redis.Client; otherwise the
	// dashboard is not mounted.
	AsynqRedis asynq.RedisConnOpt
	// Health is reported by GET /health.
	Health HealthInfo
	// Tracing traces requests, enqueues and SSE relays (tracing.go); nil
	// when tracing is off: then no span is started and no job spec
	// carries a trace.
	Tracing trace.TracerProvider
}

// check refuses Deps missing a required collaborator: the API builds none of
// its own.
func (d Deps) check() error {
	switch {
	case d.Redis == nil:
		return errors.New("new api: Deps.Redis is required")
	case d.Client == nil:
		return errors.New("new api: Deps.Client is required")
	case d.Store == nil:
		return errors.New("new api: Deps.Store is required")
	case d.Hub == nil:
		return errors.New("new api: Deps.Hub is required")
	case d.Batches == nil:
		return errors.New("new api: Deps.Batches is required")
	case d.Programs == nil:
		return errors.New("new api: Deps.Programs is required")
	}
	return nil
}

// Server is the API: a gin router over packages store and batches. Make it
// with New, serve Handler (or HTTPServer), and stop it with Shutdown.
type Server struct {
	cfg     Config
	deps    Deps
	log     zerolog.Logger
	engine  *gin.Engine
	metrics *httpMetrics
	summary *summary
	gather  prometheus.Gatherer
	monitor *asynqmon.HTTPHandler
	// tracer starts the API's spans; nil when tracing is off.
	tracer trace.Tracer

	// draining is closed when shutdown begins: streams send a reconnect
	// frame and end, long-polls answer with what they have.
	draining  chan struct{}
	drainOnce sync.Once
	// streams counts open streams and waits, which Shutdown lets finish.
	streams tracker
	// leases are this process's open streams, counted per key in Redis
	// (limitStreams); corsOrigins are the allowed CORS origins.
	leases      streamLeases
	corsOrigins map[string]bool
	// authFailures counts failed authentications per client address, and
	// authLog samples their access log lines (authlimit.go).
	authFailures *authFailures
	authLog      authLog

	mu      sync.Mutex
	httpSrv *http.Server

	// stopBackground ends the metrics summary flusher and the stream lease
	// renewer, which background waits for.
	stopBackground context.CancelFunc
	background     sync.WaitGroup
	shutdownOnce   sync.Once
	shutdownErr    error
}

// New builds the API server. It starts two background goroutines (the
// metrics summary flusher and the stream lease renewer), which Shutdown
// stops.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.WithDefaults()
	err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if err := deps.check(); err != nil {
		return nil, err
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s := &Server{
		cfg:      cfg,
		deps:     deps,
		log:      deps.Log.With().Str("component", "api").Logger(),
		gather:   reg,
		draining: make(chan struct{}),
		tracer:   newTracer(deps.Tracing),
	}
	s.corsOrigins = originSet(cfg.CORSOrigins)
	s.authLog.sampler = newAuthLogSampler()
	if s.authFailures, err = newAuthFailures(cfg.AuthFailuresPerMinute, cfg.AuthFailureAddresses); err != nil {
		return nil, err
	}
	s.warnOpen()
	if s.metrics, err = newHTTPMetrics(reg, deps.Hub, asynq.NewInspectorFromRedisClient(deps.Redis), s.log); err != nil {
		return nil, err
	}
	s.summary = newSummary(deps.Redis, s.log)
	if !cfg.DisableMonitoring {
		opt := deps.AsynqRedis
		if opt == nil {
			opt = connOptFrom(deps.Redis)
		}
		if opt != nil {
			s.monitor = newMonitor(opt, !cfg.MonitoringWritable, cfg.MonitoringFormatLimit, cfg.PrometheusURL, s.jobSpec)
		} else {
			s.log.Warn().Msg("dashboard not mounted: set Deps.AsynqRedis for this kind of Redis client")
		}
	}
	s.engine = s.routes()
	ctx, cancel := context.WithCancel(context.Background())
	s.stopBackground = cancel
	s.background.Go(func() { s.summary.run(ctx, cfg.MetricsFlushInterval) })
	s.background.Go(func() { s.leases.run(ctx, deps.Redis, cfg.RedisTimeout, s.log) })
	return s, nil
}

// routes registers every endpoint. Groups mark where authentication goes
// (issue 8): public probes and documents, the API proper, operator pages.
// GET routes go through getRoute, which adds their HEAD (head.go).
func (s *Server) routes() *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	// gin answers these redirects before any middleware runs (no security
	// headers, no request id, an HTML body): a stray slash is a 404 like
	// any unknown path instead.
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.ContextWithFallback = true
	// ClientIP (the failed-authentication limit, the anonymous rate limit,
	// the access log) reads X-Forwarded-For only from these proxies; none:
	// the connection's address. (Config validation tried them already.)
	_ = e.SetTrustedProxies(s.cfg.TrustedProxies)
	// Security (issue 8): headers on every answer, CORS preflights answered
	// before authentication, then keys (authenticate: every path but the
	// explicit publicPaths) and the per-key rate limit.
	e.Use(s.requestID, s.accessLog, s.recovery, s.securityHeaders, s.cors, s.authenticate)
	if s.tracer != nil {
		// After authenticate: only a request with a valid key continues
		// its caller's trace (traceRequest).
		e.Use(s.traceRequest)
	}
	e.Use(s.rateLimit, s.defaultDeadline)
	e.NoRoute(s.noRoute)
	e.NoMethod(s.noMethod)

	// Public: probes (and /, /docs and /openapi.json: publicPaths in
	// auth.go). No data here.
	getRoute(e, "/health", s.health)
	getRoute(e, "/livez", s.livez)
	getRoute(e, "/readyz", s.readyz)
	s.webRoutes(e) // /openapi.json, /docs, the playground at / and /static/ (docs.go)

	// The API proper: an API key each (authenticate), owners checked in the
	// handlers (loadJob; ownedBy for other resources). Routes that create
	// jobs take checkBudget, streams take limitStreams.
	v1 := e.Group("/v1")
	v1.POST("/jobs", s.checkQuery(queryParam{name: "wait"}), s.checkBudget, s.submitJob)
	getRoute(v1, "/jobs/:id", s.getJob)
	v1.DELETE("/jobs/:id", s.deleteJob)
	v1.POST("/jobs/:id/cancel", s.checkQuery(), s.cancelJob)
	getRoute(v1, "/jobs/:id/events", s.limitStreams, s.jobEvents)
	s.batchRoutes(v1)   // /v1/batches (batches.go)
	s.programRoutes(v1) // /v1/programs (programs.go)
	getRoute(v1, "/usage", s.checkQuery(usageQuery...), s.getUsage)

	seed := e.Group("")
	seed.POST("/predict", s.checkBudget, s.predict)
	seed.POST("/predict/stream", s.checkBudget, s.limitStreams, s.predictStream)
	seed.POST("/batch", s.checkBudget, s.batch)

	// Operators: admin keys (authenticate).
	getRoute(e, "/metrics", s.serveMetrics)
	if s.monitor != nil {
		e.Any(monitoringRoot+"/*any", s.serveMonitoring())
	}
	return e
}

// defaultDeadline gives every answer a write deadline; handlers that wait
// move it past their wait, and streams replace it with one per frame. A
// request with a body gets Config.ReadTimeout to send it (batch uploads
// replace that with a minimum rate: uploadBody). Only a request with a body:
// for one without, the server is already reading ahead for the next
// request, and a deadline there would cancel this one (as it clears the
// deadline once a body has been read to its end).
func (s *Server) defaultDeadline(c *gin.Context) {
	s.writeDeadline(c, 0)
	if c.Request.ContentLength != 0 {
		_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
	}
	c.Next()
}

// Handler is the API as an http.Handler.
func (s *Server) Handler() http.Handler { return s.engine }

// HTTPServer returns an http.Server for the API on addr with header and idle
// timeouts set. It has no read or write timeout: each request sets its own
// deadlines (defaultDeadline; a batch upload's moves with the bytes
// received, a stream's write deadline with each frame). Shutdown shuts it
// down.
func (s *Server) HTTPServer(addr string) *http.Server {
	hs := &http.Server{
		Addr:              addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          newStdLogger(s.log),
	}
	// Called by hs.Shutdown once the listeners are closed.
	hs.RegisterOnShutdown(s.drain)
	s.mu.Lock()
	s.httpSrv = hs
	s.mu.Unlock()
	return hs
}

// tracker counts the requests Shutdown waits for. Unlike a WaitGroup it
// refuses new ones once draining, so a late request cannot race the wait.
type tracker struct {
	mu       sync.Mutex
	n        int
	draining bool
	done     chan struct{}
}

// begin counts a request in; false when shutdown has begun.
func (t *tracker) begin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return false
	}
	t.n++
	return true
}

func (t *tracker) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.done != nil {
		close(t.done)
		t.done = nil
	}
}

// idle refuses new requests and returns a channel closed once none is left.
func (t *tracker) idle() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.draining = true
	ch := make(chan struct{})
	if t.n == 0 {
		close(ch)
	} else {
		t.done = ch
	}
	return ch
}

// drain tells streams to send their reconnect frame and end, and long waits
// to answer now.
func (s *Server) drain() {
	s.drainOnce.Do(func() { close(s.draining) })
}

// Shutdown stops the API in order: stop accepting connections (when the
// http.Server came from HTTPServer), tell SSE clients to reconnect and end
// their streams, let the remaining requests finish until ctx is done (then
// close their connections), flush the metrics summary and close the
// dashboard's Redis pools. It does not close Deps (the hub, the Redis
// client): the caller does, after. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	var errs []error
	s.mu.Lock()
	hs := s.httpSrv
	s.mu.Unlock()
	if hs != nil {
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down http server: %w", err))
			_ = hs.Close()
		}
	}
	s.drain()
	select {
	case <-s.streams.idle():
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("wait for streams: %w", ctx.Err()))
	}
	s.stopBackground()
	s.background.Wait()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.summary.flush(fctx); err != nil {
		errs = append(errs, fmt.Errorf("flush metrics summary: %w", err))
	}
	if s.monitor != nil {
		if err := s.monitor.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close dashboard: %w", err))
		}
	}
	return errors.Join(errs...)
}
