package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// TokensUsed returns the tokens owner's jobs used on day.
func TokensUsed(ctx context.Context, rdb redis.UniversalClient, owner, day string) (int64, error) {
	n, err := rdb.Get(ctx, jobs.UsageKey(owner, day)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read token usage: %w", err)
	}
	return n, nil
}
