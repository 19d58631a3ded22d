package config

import (
	"fmt"
	"strings"
	"time"
)

// Notices returns what start-up should log about the configuration: values
// that are accepted but have no effect, or whose cost or consequence is
// easy to miss. None of them stops start-up.
func (c *Config) Notices() []string {
	var n []string
	if c.HTTP.Workers != "" {
		n = append(n, fmt.Sprintf("WORKERS=%s has no effect here: scale workers as processes or replicas", c.HTTP.Workers))
	}
	for _, name := range []string{"LM_API_KEY", "LM_API_BASE"} {
		if _, via, ok := strings.Cut(c.sources[name], " ("); ok {
			n = append(n, fmt.Sprintf("%s is unset: using %s", name, strings.TrimSuffix(via, ")")))
		}
	}
	if p := c.Queue.PollInterval; p > 0 && p < 5*time.Millisecond {
		n = append(n, fmt.Sprintf("QUEUE_POLL_INTERVAL=%s: each idle interactive server makes about %d Redis commands/s",
			formatDuration(p), int(3*time.Second/p)))
	}
	if c.Queue.IdempotencyTTL > c.Queue.ResultTTL {
		n = append(n, fmt.Sprintf("IDEMPOTENCY_TTL (%s) exceeds RESULT_TTL (%s): a replay after the job's record expired finds no job",
			formatDuration(c.Queue.IdempotencyTTL), formatDuration(c.Queue.ResultTTL)))
	}
	if c.sources["RATE_LIMIT_BURST"] != SourceDefault && c.sources["RATE_LIMIT_BURST"] != "" && c.Security.RateLimitRPS == 0 {
		n = append(n, "RATE_LIMIT_BURST has no effect while RATE_LIMIT_RPS is 0 (off)")
	}
	if c.Cache.RedisURL != "" && !c.Cache.RedisEnabled {
		n = append(n, "CACHE_REDIS_URL has no effect while CACHE_REDIS_ENABLED is false")
	}
	return n
}
