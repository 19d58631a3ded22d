package jobs

import (
	"encoding/json"
	"fmt"
	"time"
)

// Token usage per owner and UTC day, behind the API's daily token budget
// (TOKEN_BUDGET_PER_DAY). The record script adds a job's tokens when the job
// completes, and the batch script a batch item's when its result slot is
// filled, each in the same atomic step, so every completion counts exactly
// once whichever process recorded it. The counters are kept whether or not a
// budget is enforced.

// UsageTTL is how long a day's usage counter lives: long enough to outlast its
// UTC day everywhere, so nothing that counts can grow without bound.
const UsageTTL = 48 * time.Hour

// UsageDay is the UTC day t falls in, as usage counters name it (yyyy-mm-dd).
func UsageDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// BudgetResetAt is when the day's usage that now counts toward resets: the
// next 00:00 UTC. Refusals for the budget say it, and their Retry-After
// waits for it.
func BudgetResetAt(now time.Time) time.Time {
	return now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
}

// UsageKey counts the LM tokens owner's completed jobs used on day (a
// [UsageDay]). The record and batch scripts build the same name (their
// usage_key), from the owner the job or batch record holds and the day Go
// passes: the record is the truth, and a job's start, which checks the
// budget, would otherwise need its owner read first.
func UsageKey(owner, day string) string { return "qa:budget:" + owner + ":" + day }

// BudgetSpent is why a job or batch item is refused at its start: its
// owner's tokens for the day are spent.
func BudgetSpent(budget int64, now time.Time) *Error {
	return &Error{Code: ErrCodeBudget, Message: fmt.Sprintf(
		"not run: this key's daily token budget (TOKEN_BUDGET_PER_DAY=%d) is spent; it resets at 00:00 UTC (%s)",
		budget, BudgetResetAt(now).Format(time.RFC3339))}
}

// ErrCodeBudget is the Error.Code of a job or batch item refused at its
// start because its owner's daily token budget is spent.
const ErrCodeBudget = "token_budget_exceeded"

// TotalTokens sums total_tokens over the models of a usage as results hold
// it (DSPy's {model: {total_tokens, …}}); 0 for a cached answer or an
// unreadable usage. The worker counts a run's tokens from the program's
// usage before it is encoded; this reads them back from a stored result.
func TotalTokens(usage json.RawMessage) int64 {
	if len(usage) == 0 {
		return 0
	}
	var byModel map[string]struct {
		TotalTokens int64 `json:"total_tokens"`
	}
	if json.Unmarshal(usage, &byModel) != nil {
		return 0
	}
	var n int64
	for _, u := range byModel {
		if u.TotalTokens > 0 {
			n += u.TotalTokens
		}
	}
	return n
}
