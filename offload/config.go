package offload

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/lmclient"
)

// Config configures the runner. Zero values mean the defaults; a field set
// by a variable takes that variable's default from package config.
type Config struct {
	// MaxRequests and MaxBytes cap one provider batch file
	// (PROVIDER_MAX_REQUESTS, PROVIDER_MAX_BYTES). Defaults
	// [config.DefaultProviderMaxRequests], [config.DefaultProviderMaxBytes].
	MaxRequests int
	MaxBytes    int64
	// PollInterval is the first wait between two looks at a running
	// provider batch, doubled at each look up to PollMax
	// (PROVIDER_POLL_INTERVAL, PROVIDER_POLL_MAX). Defaults
	// [config.DefaultProviderPollInterval], [config.DefaultProviderPollMax].
	PollInterval, PollMax time.Duration
	// Fallback is where an item goes whose provider answer does not parse
	// (PROVIDER_FALLBACK): FallbackLive or FallbackProvider. Default
	// [config.DefaultProviderFallback].
	Fallback string
	// Unfinished is what becomes of the items an expired, failed or
	// provider-cancelled provider batch left unanswered, or one the
	// provider no longer has (PROVIDER_UNFINISHED): UnfinishedLive or UnfinishedFail. Default
	// [config.DefaultProviderUnfinished].
	Unfinished string
	// LiveParallel is how many answers are replayed (and their live
	// fallbacks called) at once while a chunk downloads. Default 8.
	LiveParallel int
	// MaxLineBytes bounds one line of a provider output or error file; a
	// longer line is skipped and its item counted unanswered. Default
	// [lmclient.MaxBatchLineBytes].
	MaxLineBytes int
	// Name is the provider's name in the batch's provider object.
	// Default "openai".
	Name string
	// DisableUsage leaves usage out of results (TRACK_USAGE=false), as
	// the worker does.
	DisableUsage bool
}

// Fallback and Unfinished values.
const (
	FallbackLive     = "live"
	FallbackProvider = "provider"
	UnfinishedLive   = "live"
	UnfinishedFail   = "fail"
)

// WithDefaults returns c with each zero field set to its default.
func (c Config) WithDefaults() Config {
	c.MaxRequests = cmp.Or(c.MaxRequests, config.DefaultProviderMaxRequests)
	c.MaxBytes = cmp.Or(c.MaxBytes, int64(config.DefaultProviderMaxBytes))
	c.PollInterval = cmp.Or(c.PollInterval, config.DefaultProviderPollInterval)
	c.PollMax = cmp.Or(c.PollMax, config.DefaultProviderPollMax)
	c.Fallback = cmp.Or(c.Fallback, config.DefaultProviderFallback)
	c.Unfinished = cmp.Or(c.Unfinished, config.DefaultProviderUnfinished)
	c.LiveParallel = cmp.Or(c.LiveParallel, 8)
	c.MaxLineBytes = cmp.Or(c.MaxLineBytes, lmclient.MaxBatchLineBytes)
	c.Name = cmp.Or(c.Name, "openai")
	return c
}

// validate checks a Config with its defaults filled in.
func (c Config) validate() error {
	var errs []error
	if c.MaxRequests < 1 || c.MaxBytes < 1 || c.LiveParallel < 1 || c.MaxLineBytes < 1 {
		errs = append(errs, errors.New("MaxRequests, MaxBytes, LiveParallel and MaxLineBytes must be positive"))
	}
	if c.PollInterval <= 0 || c.PollMax < c.PollInterval {
		errs = append(errs, fmt.Errorf("PollInterval must be positive and PollMax at least it, got %v and %v", c.PollInterval, c.PollMax))
	}
	if c.Fallback != FallbackLive && c.Fallback != FallbackProvider {
		errs = append(errs, fmt.Errorf("Fallback must be %q or %q, got %q", FallbackLive, FallbackProvider, c.Fallback))
	}
	if c.Unfinished != UnfinishedLive && c.Unfinished != UnfinishedFail {
		errs = append(errs, fmt.Errorf("Unfinished must be %q or %q, got %q", UnfinishedLive, UnfinishedFail, c.Unfinished))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("offload config: %w", err)
	}
	return nil
}

// backoff is the wait before the next look at a round that polls found
// unfinished polls times: PollInterval doubled each time, up to PollMax.
func (c Config) backoff(polls int) time.Duration {
	d := c.PollInterval
	for i := 1; i < polls && d < c.PollMax; i++ {
		d *= 2
	}
	return min(d, c.PollMax)
}
