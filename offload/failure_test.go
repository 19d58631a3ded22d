package offload

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
	"github.com/redis/go-redis/v9"
)

// TestRunFailureCodes: an item's failed stage is recorded under the code
// the worker gives the same failure of a live item (worker/classify.go):
// only the item's own inputs are invalid_payload, not a deadline, the
// store or anything unforeseen.
func TestRunFailureCodes(t *testing.T) {
	// A real store failure: a Redis client that is closed.
	db := redistest.New(t)
	rdb := redis.NewClient(db.Options())
	_ = rdb.Close()
	storeErr := rdb.Get(context.Background(), "k").Err()
	if storeErr == nil {
		t.Fatal("a closed client answered")
	}
	for _, c := range []struct {
		err  error
		code string
	}{
		{&program.ParseError{}, "parse_error"},
		{&lmclient.APIError{Status: 400}, "lm_error"},
		{&lmclient.RateLimitedError{}, "rate_limited"},
		{&lmclient.ConfigError{Msg: "no key"}, "config_error"},
		{fmt.Errorf("get program: %w", jobs.ErrProgramVersionGone), jobs.CodeProgramVersionGone},
		{&program.InputError{Field: "inputs.q", Expected: "str", Got: "a number"}, "invalid_payload"},
		{fmt.Errorf("run stage: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("read item: %w", storeErr), "internal"},
		{errors.New("something unforeseen"), "internal"},
	} {
		if got := runFailure(c.err); got.Code != c.code || got.Message != c.err.Error() {
			t.Errorf("runFailure(%T %v) = %+v, want code %s and the error's message", c.err, c.err, got, c.code)
		}
	}
}
