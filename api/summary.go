package api

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// summary keeps this process's counts for the seed's JSON metrics summary and
// adds them to the global counters in Redis about once a second, off the
// request path. It counts what the seed counted: the questions answered
// through /predict, /predict/stream and each item of /batch.
type summary struct {
	rdb   redis.UniversalClient
	log   zerolog.Logger
	start time.Time

	mu      sync.Mutex
	pending store.Stats
	failing bool

	// flushing is held while a flush moves pending counts to Redis, so a
	// reader never sees them in neither place (gone from pending, not yet
	// in Redis). record does not take it: the hot path never waits on Redis.
	flushing sync.Mutex
}

func newSummary(rdb redis.UniversalClient, log zerolog.Logger) *summary {
	return &summary{rdb: rdb, log: log, start: time.Now()}
}

// record counts one answered question: failed or not, its latency (0: not
// answered) and the tokens its usage reports.
func (m *summary) record(failed bool, latency time.Duration, usage json.RawMessage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending.Requests++
	if failed {
		m.pending.Errors++
	}
	if latency > 0 {
		m.pending.LatencySeconds += latency.Seconds()
		m.pending.LatencyCount++
	}
	m.pending.Tokens += jobs.TotalTokens(usage)
}

func (m *summary) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, every)
			err := m.flush(fctx)
			cancel()
			m.mu.Lock()
			was := m.failing
			m.failing = err != nil
			m.mu.Unlock()
			switch {
			case err != nil && !was:
				m.log.Warn().Err(err).Msg("metrics summary: cannot flush counts to Redis; keeping them")
			case err == nil && was:
				m.log.Info().Msg("metrics summary: flushing again")
			}
		}
	}
}

// flush adds the pending counts to Redis; on failure they are kept for the
// next try.
func (m *summary) flush(ctx context.Context) error {
	m.flushing.Lock()
	defer m.flushing.Unlock()
	m.mu.Lock()
	delta := m.pending
	m.pending = store.Stats{}
	m.mu.Unlock()
	err := store.AddStats(ctx, m.rdb, delta, m.start)
	if err != nil {
		m.mu.Lock()
		m.pending.Requests += delta.Requests
		m.pending.Errors += delta.Errors
		m.pending.LatencySeconds += delta.LatencySeconds
		m.pending.LatencyCount += delta.LatencyCount
		m.pending.Tokens += delta.Tokens
		m.mu.Unlock()
	}
	return err
}

// totals are the global counters plus what this process has not flushed
// yet. It waits for a flush under way, whose counts are in neither place
// until it ends.
func (m *summary) totals(ctx context.Context) (store.Stats, error) {
	m.flushing.Lock()
	defer m.flushing.Unlock()
	st, err := store.ReadStats(ctx, m.rdb)
	if err != nil {
		return st, err
	}
	m.mu.Lock()
	p := m.pending
	m.mu.Unlock()
	st.Requests += p.Requests
	st.Errors += p.Errors
	st.LatencySeconds += p.LatencySeconds
	st.LatencyCount += p.LatencyCount
	st.Tokens += p.Tokens
	return st, nil
}

// serveSummary answers the seed's JSON summary, global across replicas.
func (s *Server) serveSummary(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.RedisTimeout)
	defer cancel()
	st, err := s.summary.totals(ctx)
	if err != nil {
		s.respond(c, err)
		return
	}
	start := st.StartedAt
	if start.IsZero() || s.summary.start.Before(start) {
		start = s.summary.start
	}
	errorRate, avgLatency := 0.0, 0.0
	if st.Requests > 0 {
		errorRate = float64(st.Errors) / float64(st.Requests)
	}
	if st.LatencyCount > 0 {
		avgLatency = st.LatencySeconds / float64(st.LatencyCount)
	}
	writeJSON(c, http.StatusOK, map[string]any{
		"uptime_seconds": time.Since(start).Seconds(),
		"total_requests": st.Requests,
		"total_errors":   st.Errors,
		"error_rate":     errorRate,
		"avg_latency":    avgLatency,
		"total_tokens":   st.Tokens,
	})
}
