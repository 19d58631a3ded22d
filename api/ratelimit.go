package api

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

//go:embed ratelimit.lua
var rateLimitLua string

var rateLimitScript = redis.NewScript(rateLimitLua)

// rateLimitKey is the token bucket of one caller.
func rateLimitKey(who string) string { return "qa:ratelimit:" + who }

// caller names who a limit applies to: the API key's name, or in anonymous
// mode the client's address (key names cannot hold ':', so the two never
// collide).
func caller(c *gin.Context) string {
	if name := owner(c); name != "" {
		return name
	}
	return "ip:" + c.ClientIP()
}

// rateLimit is the global middleware that holds each caller to
// Config.RateLimitRPS requests per second with bursts of RateLimitBurst,
// shared by every API replica through one bucket in Redis; over it, 429 with
// Retry-After. The probes, the static pages and the operator pages are not
// limited.
func (s *Server) rateLimit(c *gin.Context) {
	if s.cfg.RateLimitRPS <= 0 || s.accessOf(c.Request.URL.Path) != accessUser {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.RedisTimeout)
	defer cancel()
	res, err := rateLimitScript.Run(ctx, s.deps.Redis, []string{rateLimitKey(caller(c))}, s.cfg.RateLimitRPS, s.cfg.RateLimitBurst).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if err != nil {
		s.respond(c, fmt.Errorf("check rate limit: %w", err))
		return
	}
	if res[0] == 1 {
		return
	}
	s.respond(c, &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
		message:    fmt.Sprintf("rate limit of %g requests per second (burst %d) exceeded; retry later", s.cfg.RateLimitRPS, s.cfg.RateLimitBurst),
		retryAfter: time.Duration(res[1]) * time.Millisecond})
}
