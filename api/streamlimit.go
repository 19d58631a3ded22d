package api

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

//go:embed streamlimit.lua
var streamLimitLua string

var streamLimitScript = redis.NewScript(streamLimitLua)

// streamLeasesKey holds the leases of one caller's open streams.
func streamLeasesKey(who string) string { return "qa:streams:" + who }

// waitLeasesKey holds the leases of one caller's long polls: a key space of
// their own, so streams and waits have separate caps.
func waitLeasesKey(who string) string { return "qa:waits:" + who }

// streamLease is how long a lease counts without a renewal. The process
// renews its leases every third of it; the leases of a process that died
// stop counting this long after.
const streamLease = 30 * time.Second

// lease is one held lease: a stream, a long poll or an upload counting
// against its caller's cap (streamlimit.lua).
type lease struct {
	s       *Server
	id, key string
}

// acquireLease takes a lease in the lease set key unless it already holds
// limit; ok is false when it does. The process renews the lease until
// release.
func (s *Server) acquireLease(ctx context.Context, key string, limit int) (l *lease, ok bool, err error) {
	id := jobs.NewJobID()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RedisTimeout)
	defer cancel()
	ok, err = streamLimitScript.Run(ctx, s.deps.Redis, []string{key}, "acquire", id, streamLease.Milliseconds(), limit).Bool()
	if err != nil || !ok {
		return nil, false, err
	}
	s.leases.add(id, key)
	return &lease{s: s, id: id, key: key}, true, nil
}

// release gives the lease back. It runs when the request's context may be
// done, so it has its own timeout; a failed release is only logged: the
// lease runs out by itself.
func (l *lease) release() {
	l.s.leases.remove(l.id)
	ctx, cancel := context.WithTimeout(context.Background(), l.s.cfg.RedisTimeout)
	defer cancel()
	if err := streamLimitScript.Run(ctx, l.s.deps.Redis, []string{l.key}, "release", l.id).Err(); err != nil {
		l.s.log.Warn().Err(err).Str("leases", l.key).Msg("release a lease (it runs out by itself)")
	}
}

// tooMany is the 429 of a request over a cap on requests in progress: the
// lease caps (streams, long polls, uploads per key) and the uploads per
// process. All answer with BusyRetryAfter, the hint of a full server: the
// places are held by requests that do not say when they will end.
// ReconnectDelay (how soon to reconnect after a shutdown) and PollAfter
// (when a job may have moved) time other things.
func (s *Server) tooMany(code, message string) *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: code, message: message, retryAfter: s.cfg.BusyRetryAfter}
}

// openStream holds the caller to Config.MaxStreamsPerKey open streams across
// every API replica; beyond, 429 with Retry-After. Release the lease when
// the stream ends.
func (s *Server) openStream(c *gin.Context) (*lease, error) {
	l, ok, err := s.acquireLease(c.Request.Context(), streamLeasesKey(caller(c)), s.cfg.MaxStreamsPerKey)
	if err != nil {
		return nil, fmt.Errorf("count open streams: %w", err)
	}
	if !ok {
		return nil, s.tooMany("too_many_streams",
			fmt.Sprintf("this key already holds %d open streams (event streams and results downloads that wait; SSE_MAX_STREAMS_PER_KEY); close one or retry later",
				s.cfg.MaxStreamsPerKey))
	}
	return l, nil
}

// limitStreams is openStream in front of a handler that always streams.
// HEAD gets the stream's headers only, so it takes no lease.
func (s *Server) limitStreams(c *gin.Context) {
	if isHead(c) {
		return
	}
	l, err := s.openStream(c)
	if err != nil {
		s.respond(c, err)
		return
	}
	defer l.release()
	c.Next()
}

// streamLeases are the leases this process holds (streams, long polls,
// uploads), renewed together: one pipeline per period however many are
// held.
type streamLeases struct {
	mu   sync.Mutex
	open map[string]string // lease id → its caller's leases key
}

func (l *streamLeases) add(id, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open == nil {
		l.open = map[string]string{}
	}
	l.open[id] = key
}

func (l *streamLeases) remove(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.open, id)
}

// run renews the open leases every third of streamLease until ctx ends. A
// failed renewal is only logged: the requests go on, and at worst a key may
// open one too many once a lease has run out.
func (l *streamLeases) run(ctx context.Context, rdb redis.UniversalClient, timeout time.Duration, log zerolog.Logger) {
	t := time.NewTicker(streamLease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.renew(ctx, rdb, timeout); err != nil {
				log.Warn().Err(err).Msg("renew leases")
			}
		}
	}
}

func (l *streamLeases) renew(ctx context.Context, rdb redis.UniversalClient, timeout time.Duration) error {
	l.mu.Lock()
	open := make(map[string]string, len(l.open))
	for id, key := range l.open {
		open[id] = key
	}
	l.mu.Unlock()
	if len(open) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The script is loaded by every acquire; EVALSHA in a pipeline saves
	// sending its text with each lease.
	if err := streamLimitScript.Load(ctx, rdb).Err(); err != nil {
		return fmt.Errorf("load lease script: %w", err)
	}
	pipe := rdb.Pipeline()
	for id, key := range open {
		streamLimitScript.EvalSha(ctx, pipe, []string{key}, "renew", id, streamLease.Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("renew %d leases: %w", len(open), err)
	}
	return nil
}
