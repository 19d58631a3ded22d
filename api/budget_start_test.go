package api_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// refuseAtStart waits for the one job the request under test submitted,
// spends alice's budget, and starts the job as a worker would: the start
// refuses it for the budget.
func (b *bundle) refuseAtStart(t *testing.T, budget int64) {
	t.Helper()
	ctx := context.Background()
	var id string
	testwait.Until(t, "the job to be submitted", func() bool {
		keys := b.db.Client.Keys(ctx, "qa:job:*").Val()
		for _, k := range keys {
			if !strings.HasSuffix(k, ":events") {
				id = strings.TrimPrefix(k, "qa:job:")
			}
		}
		return id != ""
	})
	if err := b.db.Client.IncrBy(ctx, jobs.UsageKey("alice", jobs.UsageDay(time.Now())), budget).Err(); err != nil {
		t.Fatal(err)
	}
	if _, out, err := b.store.Start(ctx, id, "test-worker", 0); err != nil || out != store.OverBudget {
		t.Fatalf("start: %v %v, want OverBudget", out, err)
	}
}

// untilReset is the Retry-After, in whole seconds, that points at the next
// 00:00 UTC from t.
func untilReset(t time.Time) int {
	return int((jobs.BudgetResetAt(t).Sub(t) + time.Second - 1) / time.Second)
}

// TestBudgetSpentBeforeStartIs429: the budget runs out between a question's
// submit and its start. /predict answers as it does when the budget is spent
// at submit: 429 in the seed's shape, Retry-After until 00:00 UTC; the
// stream's error frame and /batch's item say the same.
func TestBudgetSpentBeforeStartIs429(t *testing.T) {
	t.Parallel()
	const budget = 20
	o := options{api: secured(t, api.Config{TokenBudgetPerDay: budget}), jobs: store.Config{TokenBudgetPerDay: budget}}

	t.Run("predict", func(t *testing.T) {
		t.Parallel()
		b := setup(t, o)
		type answer struct {
			resp *http.Response
			body []byte
		}
		done := make(chan answer, 1)
		before := time.Now()
		go func() {
			resp, body := b.do(t, "POST", "/predict", map[string]any{"question": "q"}, bearer(aliceKey))
			done <- answer{resp, body}
		}()
		b.refuseAtStart(t, budget)
		a := <-done
		after := time.Now()
		ra, err := strconv.Atoi(a.resp.Header.Get("Retry-After"))
		if a.resp.StatusCode != http.StatusTooManyRequests || err != nil || ra < untilReset(after) || ra > untilReset(before) {
			t.Fatalf("/predict: %d Retry-After %q (want %d..%d) %s", a.resp.StatusCode, a.resp.Header.Get("Retry-After"),
				untilReset(after), untilReset(before), a.body)
		}
		if !strings.HasPrefix(string(a.body), `{"detail":"daily token budget exceeded: `) || !strings.Contains(string(a.body), "TOKEN_BUDGET_PER_DAY") {
			t.Fatalf("/predict body: %s", a.body)
		}
	})

	t.Run("stream", func(t *testing.T) {
		t.Parallel()
		b := setup(t, o)
		s := b.openSSE(t, "POST", "/predict/stream", map[string]any{"question": "q"}, bearer(aliceKey))
		b.refuseAtStart(t, budget)
		var frames []string
		for f := range s.frames {
			frames = append(frames, f.Data)
		}
		if len(frames) != 2 || !strings.HasPrefix(frames[0], `{"type":"error","detail":"daily token budget exceeded: `) ||
			!strings.Contains(frames[0], "TOKEN_BUDGET_PER_DAY") || frames[1] != "[DONE]" {
			t.Fatalf("stream frames: %q", frames)
		}
	})

	t.Run("batch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, o)
		done := make(chan []byte, 1)
		go func() {
			resp, body := b.do(t, "POST", "/batch", []any{map[string]any{"question": "q"}}, bearer(aliceKey))
			if resp.StatusCode != http.StatusOK {
				t.Errorf("/batch: %d %s", resp.StatusCode, body)
			}
			done <- body
		}()
		b.refuseAtStart(t, budget)
		out := decode[struct {
			Results []struct {
				Error *string `json:"error"`
			} `json:"results"`
		}](t, <-done)
		if len(out.Results) != 1 || out.Results[0].Error == nil {
			t.Fatalf("/batch results: %+v", out.Results)
		}
		if e := *out.Results[0].Error; !strings.HasPrefix(e, "daily token budget exceeded: ") {
			t.Fatalf("/batch item error: %q", e)
		}
	})
}
