package api

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
)

// Per-key limits that routes opt into (issue 8): limitStreams on each route
// that holds an event stream open, checkBudget on each route that creates
// jobs. The body size and question length limits live in the decoders.

// streamCounter counts the open streams of each caller in this process.
type streamCounter struct {
	mu   sync.Mutex
	open map[string]int
}

func (sc *streamCounter) acquire(who string, limit int) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.open[who] >= limit {
		return false
	}
	if sc.open == nil {
		sc.open = map[string]int{}
	}
	sc.open[who]++
	return true
}

func (sc *streamCounter) release(who string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.open[who]--; sc.open[who] <= 0 {
		delete(sc.open, who)
	}
}

// limitStreams holds each caller to Config.MaxStreamsPerKey open streams on
// this API process (so N replicas allow up to N times as many); beyond, 429
// with Retry-After. Put it in front of every streaming handler.
func (s *Server) limitStreams(c *gin.Context) {
	who := caller(c)
	if !s.openStreams.acquire(who, s.cfg.MaxStreamsPerKey) {
		s.respond(c, &apiError{status: http.StatusTooManyRequests, code: "too_many_streams",
			message:    fmt.Sprintf("this key already holds %d open event streams; close one or retry later", s.cfg.MaxStreamsPerKey),
			retryAfter: s.cfg.ReconnectDelay})
		return
	}
	defer s.openStreams.release(who)
	c.Next()
}

// checkBudget refuses new work (429, naming the budget, with Retry-After
// until the next UTC day) once the caller's completed jobs have used
// Config.TokenBudgetPerDay tokens today. Jobs already accepted run on, so a
// day can end a little over budget. Put it in front of every handler that
// creates jobs.
func (s *Server) checkBudget(c *gin.Context) {
	if s.cfg.TokenBudgetPerDay <= 0 {
		return
	}
	now := time.Now()
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.RedisTimeout)
	defer cancel()
	used, err := jobs.TokensUsed(ctx, s.deps.Redis, owner(c), jobs.UsageDay(now))
	if err != nil {
		s.respond(c, err)
		return
	}
	if used < s.cfg.TokenBudgetPerDay {
		return
	}
	midnight := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	s.respond(c, &apiError{status: http.StatusTooManyRequests, code: "token_budget_exceeded",
		message: fmt.Sprintf("daily token budget exceeded: this key has used %d of its %d tokens (TOKEN_BUDGET_PER_DAY) today; it resets at 00:00 UTC",
			used, s.cfg.TokenBudgetPerDay),
		retryAfter: midnight.Sub(now)})
}
