package store

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/config"
)

// Config is what the job operations need to know. The zero value of each field
// means its default; a field set by a variable takes that variable's default
// from package config.
type Config struct {
	// MaxAttempts is how many times a job may start before it fails for good
	// (MAX_RETRIES + 1). Default [config.DefaultMaxRetries] + 1.
	MaxAttempts int
	// ResultTTL is how long an ended job's record and events are kept
	// (RESULT_TTL). Default [config.DefaultResultTTL].
	ResultTTL time.Duration
	// PendingTTL bounds the life of a job that never ends (its worker fleet
	// vanished). Default 7 days.
	PendingTTL time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is remembered
	// (IDEMPOTENCY_TTL). Default [config.DefaultIdempotencyTTL].
	IdempotencyTTL time.Duration
	// MaxPending is the most interactive jobs waiting before submits are
	// refused with ErrQueueFull (QUEUE_MAX_PENDING). Default
	// [config.DefaultQueueMaxPending]; negative means no limit.
	MaxPending int
	// JobTimeout bounds one attempt (JOB_TIMEOUT); asynq stores it in whole
	// seconds. Default [config.DefaultJobTimeout].
	JobTimeout time.Duration
	// TaskRetention keeps a job's finished asynq task this long, with a copy
	// of its result, so the dashboard lists it among the completed tasks
	// (MONITORING_COMPLETED_TASKS: 1h); asynq stores whole seconds. Default
	// 0: a finished task goes at once, two Redis commands a job fewer and
	// none for asynq's janitor later; the job's record holds the result.
	TaskRetention time.Duration
	// StreamCap is the approximate length at which a job's event stream is
	// trimmed. It must hold a whole answer's events. Default 10000.
	StreamCap int
	// TokenBudgetPerDay is the LM tokens one owner's jobs and batch items may
	// use per UTC day (TOKEN_BUDGET_PER_DAY), checked as each starts: once it
	// is spent, they end failed without calling the LM. 0 (the default) is
	// no budget.
	TokenBudgetPerDay int64
	// UsageRetention is how long the usage accounting keeps an hour's
	// counts past the hour's end (USAGE_RETENTION; jobs.UsageStatsKey).
	// Default [config.DefaultUsageRetention].
	UsageRetention time.Duration
}

// taskOptions are the asynq options of a job's task: the one its submit
// enqueues and each one a recoverer puts back in its place.
func (c Config) taskOptions(taskID, queue string) []asynq.Option {
	opts := []asynq.Option{asynq.TaskID(taskID), asynq.Queue(queue),
		asynq.MaxRetry(c.TaskMaxRetry()), asynq.Timeout(c.JobTimeout)}
	if c.TaskRetention > 0 {
		opts = append(opts, asynq.Retention(c.TaskRetention))
	}
	return opts
}

// WithDefaults returns c with each zero field set to its default.
func (c Config) WithDefaults() Config {
	c.MaxAttempts = cmp.Or(c.MaxAttempts, config.DefaultMaxRetries+1)
	c.ResultTTL = cmp.Or(c.ResultTTL, config.DefaultResultTTL)
	c.PendingTTL = cmp.Or(c.PendingTTL, 7*24*time.Hour)
	c.IdempotencyTTL = cmp.Or(c.IdempotencyTTL, config.DefaultIdempotencyTTL)
	c.JobTimeout = cmp.Or(c.JobTimeout, config.DefaultJobTimeout)
	c.MaxPending = cmp.Or(c.MaxPending, config.DefaultQueueMaxPending)
	c.StreamCap = cmp.Or(c.StreamCap, 10000)
	c.UsageRetention = cmp.Or(c.UsageRetention, config.DefaultUsageRetention)
	return c
}

// validate checks a Config with its defaults filled in.
func (c Config) validate() error {
	var errs []error
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("MaxAttempts must be at least 1, got %d", c.MaxAttempts))
	}
	for name, d := range map[string]time.Duration{"JobTimeout": c.JobTimeout, "TaskRetention": c.TaskRetention} {
		if d%time.Second != 0 || d < 0 {
			errs = append(errs, fmt.Errorf("%s must be a whole number of seconds, not negative (asynq stores seconds), got %v", name, d))
		}
	}
	for name, d := range map[string]time.Duration{"ResultTTL": c.ResultTTL, "PendingTTL": c.PendingTTL, "IdempotencyTTL": c.IdempotencyTTL,
		"UsageRetention": c.UsageRetention} {
		if d < time.Millisecond {
			errs = append(errs, fmt.Errorf("%s must be at least 1ms, got %v", name, d))
		}
	}
	if c.TokenBudgetPerDay < 0 {
		errs = append(errs, fmt.Errorf("TokenBudgetPerDay must not be negative, got %d", c.TokenBudgetPerDay))
	}
	if c.StreamCap < 100 {
		errs = append(errs, fmt.Errorf("StreamCap must be at least 100, got %d", c.StreamCap))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("jobs config: %w", err)
	}
	return nil
}
