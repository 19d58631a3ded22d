package fakelm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets up a Server. The zero value is an instant, fault-free server on
// a free loopback port.
type Config struct {
	// Addr is the listen address. Default "127.0.0.1:0" (a free port).
	Addr string
	// TTFT is the delay before the first token (or before a JSON answer).
	// Default 0.
	TTFT time.Duration
	// TokensPerSecond paces the tokens after the first; a JSON answer waits
	// as long as its stream would have taken. Default 0: instant.
	TokensPerSecond float64
	// RPM, when positive, is a requests-per-minute limit enforced over a
	// sliding minute with 429s and Retry-After. Default 0: unlimited.
	RPM int
	// RPMPerSecond enforces RPM the way providers quantise their per-minute
	// limits (OpenAI documents 60,000 RPM enforced as 1,000 per second): a
	// bucket of one second's requests, RPM/60 but at least one, refilled
	// continuously at RPM/60 per second, instead of the sliding minute.
	// Default false.
	RPMPerSecond bool
	// APIKey, when set, is required as "Authorization: Bearer KEY" (or an
	// api-key header, as Azure sends); others get 401. Default "": any key.
	APIKey string
	// Models are listed by GET /v1/models. Default ["gpt-4o-mini"].
	Models []string
	// Batch shapes the Files and Batches API (turnaround, faults, limits).
	Batch BatchConfig
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if len(c.Models) == 0 {
		c.Models = []string{"gpt-4o-mini"}
	}
	c.Batch = c.Batch.withDefaults()
	return c
}

func (c Config) validate() error {
	if c.TTFT < 0 {
		return errors.New("validate config: TTFT must not be negative")
	}
	if c.TokensPerSecond < 0 {
		return errors.New("validate config: TokensPerSecond must not be negative")
	}
	if c.RPM < 0 {
		return errors.New("validate config: RPM must not be negative")
	}
	return c.Batch.validate()
}

// Server is a running fake LM. Its setters are safe to call while it serves.
type Server struct {
	http     *http.Server
	listener net.Listener
	closing  chan struct{}
	closeMu  sync.Once

	mu       sync.Mutex
	cfg      Config
	queued   []Fault
	counts   map[string]int64
	seen     map[uint64]int // directive request fingerprints → times seen
	window   []time.Time    // chat requests in the last minute, for RPM
	bucket   float64        // requests left this second, for RPMPerSecond
	bucketAt time.Time      // when bucket was last refilled
	lastBody []byte

	clock    atomic.Int64 // how far Advance moved the fake's clock, in ns
	p        provider     // the Files and Batches API
	batchAPI http.Handler
}

// New starts a fake LM listening on cfg.Addr. Close or Shutdown stops it.
func New(cfg Config) (*Server, error) {
	s, err := NewUnstarted(cfg)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen fakelm: %w", err)
	}
	s.listener = l
	go func() { _ = s.http.Serve(l) }()
	return s, nil
}

// NewUnstarted builds a Server without listening, for callers that mount
// Handler themselves; URL, Close and Shutdown are then of no use.
func NewUnstarted(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		closing: make(chan struct{}),
		counts:  map[string]int64{},
		seen:    map[uint64]int{},
		p: provider{cfg: cfg.Batch, files: map[string]*file{}, batches: map[string]*batch{},
			outage: outage(cfg.Batch.OutageRequests, cfg.Batch)},
	}
	s.batchAPI = s.batchMux()
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// URL is the OpenAI base URL of the server, "http://host:port/v1".
func (s *Server) URL() string {
	if s.listener == nil {
		return ""
	}
	return "http://" + s.listener.Addr().String() + "/v1"
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string {
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Close stops the server at once, cutting open connections and ending stalls.
func (s *Server) Close() error {
	s.closeMu.Do(func() { close(s.closing) })
	if err := s.http.Close(); err != nil {
		return fmt.Errorf("close fakelm: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits, until ctx is done, for the
// requests in flight; stalled requests are released first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeMu.Do(func() { close(s.closing) })
	if err := s.http.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down fakelm: %w", err)
	}
	return nil
}

// Handler serves the OpenAI-compatible routes.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.count(countedPath(r.URL.Path))
		if !s.authorized(r) {
			writeError(w, http.StatusUnauthorized, Fault{}, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
			return
		}
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/chat/completions"):
			s.chat(w, r)
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/models"):
			s.models(w)
		case isBatchPath(r.URL.Path):
			s.batchAPI.ServeHTTP(w, r)
		default:
			writeError(w, http.StatusNotFound, Fault{}, "Unknown path "+r.URL.Path, "invalid_request_error", "unknown_url")
		}
	})
}

func (s *Server) authorized(r *http.Request) bool {
	s.mu.Lock()
	key := s.cfg.APIKey
	s.mu.Unlock()
	if key == "" {
		return true
	}
	return r.Header.Get("Authorization") == "Bearer "+key || r.Header.Get("api-key") == key
}

func (s *Server) count(path string) {
	s.mu.Lock()
	s.counts[path]++
	s.mu.Unlock()
}

// SetTTFT changes the time to first token.
func (s *Server) SetTTFT(d time.Duration) {
	s.mu.Lock()
	s.cfg.TTFT = d
	s.mu.Unlock()
}

// SetTokensPerSecond changes the token rate; 0 is instant.
func (s *Server) SetTokensPerSecond(tps float64) {
	s.mu.Lock()
	s.cfg.TokensPerSecond = tps
	s.mu.Unlock()
}

// SetRPM changes the enforced requests-per-minute limit; 0 removes it.
func (s *Server) SetRPM(rpm int) {
	s.mu.Lock()
	s.cfg.RPM = rpm
	s.window = nil
	s.bucketAt = time.Time{}
	s.mu.Unlock()
}

// SetAPIKey changes the required API key; "" accepts any.
func (s *Server) SetAPIKey(key string) {
	s.mu.Lock()
	s.cfg.APIKey = key
	s.mu.Unlock()
}

// FailNext makes the next n chat completion requests fail with f, after any
// faults already queued.
func (s *Server) FailNext(n int, f Fault) {
	s.mu.Lock()
	for range n {
		s.queued = append(s.queued, f)
	}
	s.mu.Unlock()
}

// FailBatchAPI makes the next n requests to the Files and Batches
// endpoints fail with f (a FaultStatus; Status 0 is 503), after any
// already queued: an outage of the provider's batch API.
func (s *Server) FailBatchAPI(n int, f Fault) {
	s.p.mu.Lock()
	for range n {
		s.p.outage = append(s.p.outage, f)
	}
	s.p.mu.Unlock()
}

// outage is n faults of cfg's outage status and Retry-After.
func outage(n int, cfg BatchConfig) []Fault {
	out := make([]Fault, n)
	for i := range out {
		out[i] = Fault{Kind: FaultStatus, Status: cfg.OutageStatus, RetryAfter: cfg.OutageRetryAfter}
	}
	return out
}

// SetBatchConfig replaces the Files and Batches API's settings (defaults
// filled in); batches already created keep their expires_at. An outage it
// names is queued after any already queued.
func (s *Server) SetBatchConfig(c BatchConfig) error {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return err
	}
	s.p.mu.Lock()
	s.p.cfg = c
	s.p.outage = append(s.p.outage, outage(c.OutageRequests, c)...)
	s.p.mu.Unlock()
	return nil
}

// Advance moves the fake's clock forward by d: batch phases, expiry and
// timestamps follow it, so tests never sleep.
func (s *Server) Advance(d time.Duration) { s.clock.Add(int64(d)) }

// Now is the fake's clock: the wall clock moved on by Advance.
func (s *Server) Now() time.Time { return s.now() }

func (s *Server) now() time.Time { return time.Now().Add(time.Duration(s.clock.Load())) }

// StepBatches moves every unfinished batch on as a retrieve of it would:
// at most one phase each, once its phase's time is up.
func (s *Server) StepBatches() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	for _, id := range s.p.batchOrder {
		s.advance(s.p.batches[id], true)
	}
}

// PurgeBatch forgets batch id as a provider that purged it (or a person
// who deleted it in its console) has: its retrieve and cancel answer 404,
// its list leaves it out. Its files stay (DELETE /v1/files/{id} removes
// them). False when there is no such batch.
func (s *Server) PurgeBatch(id string) bool {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if _, ok := s.p.batches[id]; !ok {
		return false
	}
	delete(s.p.batches, id)
	s.p.batchOrder = without(s.p.batchOrder, id)
	return true
}

// BatchesCreated is how many batches POST /v1/batches created: a test's
// proof that no batch was created (and billed) twice.
func (s *Server) BatchesCreated() int {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.p.created
}

// ClearFaults drops every queued fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.queued = nil
	s.mu.Unlock()
}

// Requests is how many requests the server received, on every path.
func (s *Server) Requests() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, c := range s.counts {
		n += c
	}
	return n
}

// RequestsTo is how many requests the server received on path, e.g.
// "/v1/chat/completions"; the Files and Batches endpoints are counted by
// route, e.g. "/v1/batches/{id}" for every batch's retrieve.
func (s *Server) RequestsTo(path string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

// Paths lists the paths that received requests, sorted.
func (s *Server) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.counts))
	for p := range s.counts {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// LastRequest is the body of the last chat completion request, as received.
func (s *Server) LastRequest() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.lastBody...)
}

// snapshot returns the current pacing settings.
func (s *Server) snapshot() (ttft time.Duration, tps float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.TTFT, s.cfg.TokensPerSecond
}

// admit applies the RPM limit; it returns how long to wait when refused.
func (s *Server) admit(now time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.RPM <= 0 {
		return 0, true
	}
	if s.cfg.RPMPerSecond {
		return s.admitPerSecond(now)
	}
	cut := now.Add(-time.Minute)
	i := 0
	for i < len(s.window) && !s.window[i].After(cut) {
		i++
	}
	s.window = s.window[i:]
	if len(s.window) >= s.cfg.RPM {
		return s.window[0].Sub(cut), false
	}
	s.window = append(s.window, now)
	return 0, true
}

// admitPerSecond is admit's per-second bucket; s.mu is held.
func (s *Server) admitPerSecond(now time.Time) (time.Duration, bool) {
	perSec := float64(s.cfg.RPM) / 60
	capacity := max(1, perSec)
	if s.bucketAt.IsZero() {
		s.bucket, s.bucketAt = capacity, now
	}
	if elapsed := now.Sub(s.bucketAt); elapsed > 0 {
		s.bucket = min(capacity, s.bucket+elapsed.Seconds()*perSec)
		s.bucketAt = now
	}
	if s.bucket < 1 {
		return time.Duration((1 - s.bucket) / perSec * float64(time.Second)), false
	}
	s.bucket--
	return 0, true
}

// nextFault pops a queued fault (live calls only: FailNext is about HTTP
// requests), else applies a directive from the request.
func (s *Server) nextFault(d directive, hasDirective bool, fingerprint uint64, live bool) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if live && len(s.queued) > 0 {
		f := s.queued[0]
		s.queued = s.queued[1:]
		return f
	}
	if !hasDirective {
		return Fault{}
	}
	s.seen[fingerprint]++
	if d.times > 0 && s.seen[fingerprint] > d.times {
		return Fault{}
	}
	return d.fault
}
