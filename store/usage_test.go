package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// TestCompletionCountsTokensOnce: a completed job adds its usage's
// total_tokens to its owner's counter for the day, once (a second Complete
// is refused), with a TTL; failures and cached answers add nothing.
func TestCompletionCountsTokensOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	day := jobs.UsageDay(time.Now())
	run := func(owner string, usage string) *store.Attempt {
		t.Helper()
		j := submit(t, b, ask(owner, "q"))
		a, out, err := b.store.Start(ctx, j.ID, "w", 0)
		if err != nil || out != store.Started {
			t.Fatalf("start: %v %v", out, err)
		}
		if usage != "" {
			r := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}, Usage: json.RawMessage(usage)}
			if _, err := a.Complete(ctx, r, jobs.TotalTokens(r.Usage)); err != nil {
				t.Fatalf("complete: %v", err)
			}
		}
		return a
	}
	a := run("alice", `{"m1":{"total_tokens":15},"m2":{"total_tokens":5}}`)
	// A second completion of the same job is refused and counts nothing.
	if _, err := a.Complete(ctx, &jobs.Result{Usage: json.RawMessage(`{"m":{"total_tokens":1000}}`)}, 1000); err == nil {
		t.Fatal("second Complete succeeded")
	}
	run("alice", `{"m":{"total_tokens":7}}`)
	run("alice", `{}`) // from cache: no tokens
	failed := run("alice", "")
	if err := failed.Fail(ctx, &jobs.Error{Code: "x", Message: "x"}); err != nil {
		t.Fatal(err)
	}
	run("bob", `{"m":{"total_tokens":3}}`)

	for owner, want := range map[string]int64{"alice": 27, "bob": 3, "carol": 0} {
		got, err := store.TokensUsed(ctx, b.db.Client, owner, day)
		if err != nil || got != want {
			t.Errorf("TokensUsed(%s) = %d, %v; want %d", owner, got, err, want)
		}
	}
	ttl, err := b.db.Client.TTL(ctx, jobs.UsageKey("alice", day)).Result()
	if err != nil || ttl <= 0 || ttl > jobs.UsageTTL {
		t.Errorf("usage key TTL = %v, %v; want in (0, %v]", ttl, err, jobs.UsageTTL)
	}
}
