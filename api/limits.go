package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// Per-key limits that routes opt into (issue 8): limitStreams on each route
// that holds an event stream open (a results download takes its lease only
// when it waits, and a long poll once it has waited a second: streamlimit.go),
// checkBudget on each route that creates jobs. The body size and question
// length limits live in the decoders.

// checkBudget refuses new work (429, naming the budget, with Retry-After
// until the next UTC day) once the caller's completed jobs have used
// Config.TokenBudgetPerDay tokens today. The workers check the budget again
// as each job or batch item starts (store.Config.TokenBudgetPerDay), so work
// accepted earlier overshoots it by what is running when it is spent. Put it
// in front of every handler that creates jobs.
func (s *Server) checkBudget(c *gin.Context) {
	if s.cfg.TokenBudgetPerDay <= 0 {
		return
	}
	now := time.Now()
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.RedisTimeout)
	defer cancel()
	used, err := store.TokensUsed(ctx, s.deps.Redis, owner(c), jobs.UsageDay(now))
	if err != nil {
		s.respond(c, err)
		return
	}
	if used < s.cfg.TokenBudgetPerDay {
		return
	}
	s.respond(c, &apiError{status: http.StatusTooManyRequests, code: jobs.ErrCodeBudget,
		message: fmt.Sprintf("daily token budget exceeded: this key has used %d of its %d tokens (TOKEN_BUDGET_PER_DAY) today; it resets at 00:00 UTC",
			used, s.cfg.TokenBudgetPerDay),
		retryAfter: jobs.BudgetResetAt(now).Sub(now)})
}
