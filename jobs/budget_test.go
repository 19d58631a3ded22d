package jobs_test

import (
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
)

// TestBudgetResetAt: a day's budget resets at the next 00:00 UTC, whatever
// the zone of the time given; at midnight exactly, the day has just begun.
func TestBudgetResetAt(t *testing.T) {
	t.Parallel()
	tokyo := time.FixedZone("JST", 9*3600)
	for _, c := range []struct{ now, want time.Time }{
		{time.Date(2026, 3, 1, 23, 59, 59, 500e6, time.UTC), time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 3, 2, 8, 0, 0, 0, tokyo), time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}, // 23:00 UTC on the 1st
	} {
		if got := jobs.BudgetResetAt(c.now); !got.Equal(c.want) || got.Location() != time.UTC {
			t.Errorf("BudgetResetAt(%v) = %v, want %v", c.now, got, c.want)
		}
	}
}
