package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// Stats are the summary's counters (totals, or a delta to add).
type Stats struct {
	Requests, Errors int64
	// LatencySeconds sums the latencies of LatencyCount answered requests.
	LatencySeconds float64
	LatencyCount   int64
	Tokens         int64
	// StartedAt is when the first process started counting (read only).
	StartedAt time.Time
}

// Zero reports whether s adds nothing.
func (s Stats) Zero() bool {
	return s.Requests == 0 && s.Errors == 0 && s.LatencySeconds == 0 && s.LatencyCount == 0 && s.Tokens == 0
}

// AddStats adds delta to the global counters and records start as the start
// time unless one is recorded, in one round trip.
func AddStats(ctx context.Context, rdb redis.UniversalClient, delta Stats, start time.Time) error {
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SetNX(ctx, jobs.StatsStartedKey, start.UnixMilli(), 0)
		for key, v := range map[string]int64{
			jobs.StatsRequestsKey: delta.Requests, jobs.StatsErrorsKey: delta.Errors,
			jobs.StatsLatencyCountKey: delta.LatencyCount, jobs.StatsTokensKey: delta.Tokens,
		} {
			if v != 0 {
				p.IncrBy(ctx, key, v)
			}
		}
		if delta.LatencySeconds != 0 {
			p.IncrByFloat(ctx, jobs.StatsLatencySumKey, delta.LatencySeconds)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add stats: %w", err)
	}
	return nil
}

// ReadStats reads the global counters.
func ReadStats(ctx context.Context, rdb redis.UniversalClient) (Stats, error) {
	var s Stats
	vals, err := rdb.MGet(ctx, jobs.StatsStartedKey, jobs.StatsRequestsKey, jobs.StatsErrorsKey,
		jobs.StatsLatencySumKey, jobs.StatsLatencyCountKey, jobs.StatsTokensKey).Result()
	if err != nil {
		return s, fmt.Errorf("read stats: %w", err)
	}
	var errs []error
	num := func(i int) int64 {
		v, _ := vals[i].(string)
		if v == "" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		errs = append(errs, err)
		return n
	}
	if ms := num(0); ms > 0 {
		s.StartedAt = time.UnixMilli(ms).UTC()
	}
	s.Requests, s.Errors, s.LatencyCount, s.Tokens = num(1), num(2), num(4), num(5)
	if v, _ := vals[3].(string); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		errs = append(errs, err)
		s.LatencySeconds = f
	}
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("read stats: %w", err)
	}
	return s, nil
}
