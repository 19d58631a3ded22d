package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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

// TestUsageAccountingCountsOnce: each completed job adds itself to its
// hour's usage accounting once, by key, program, version and model (a
// second Complete, as after a lost reply, is refused and counts nothing);
// a cache hit counts as such at no cost, an unknown model's job as
// unpriced; failures count nothing. ReadUsage keeps one key's rows when
// asked, and the hash expires UsageRetention past its hour's end.
func TestUsageAccountingCountsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{UsageRetention: 2 * time.Hour})
	ctx := context.Background()
	price := func(n int64) *int64 { return &n }
	run := func(owner string, r *jobs.Result) *store.Attempt {
		t.Helper()
		j := submit(t, b, ask(owner, "q"))
		a, out, err := b.store.Start(ctx, j.ID, "w", 0)
		if err != nil || out != store.Started {
			t.Fatalf("start: %v %v", out, err)
		}
		if r != nil {
			if _, err := a.Complete(ctx, r, r.Tokens.Input+r.Tokens.Output); err != nil {
				t.Fatalf("complete: %v", err)
			}
		}
		return a
	}
	prov := func(version, model string, hit bool) jobs.Provenance {
		return jobs.Provenance{Program: "qa", ProgramVersion: version, Model: model, CacheHit: hit}
	}
	priced := &jobs.Result{Provenance: prov("v1", "openai/gpt-4o-mini", false),
		Tokens: jobs.TokenCount{Input: 100, CachedInput: 40, Output: 10}, Cost: price(25)}
	a := run("alice", priced)
	if _, err := a.Complete(ctx, priced, 110); !errors.Is(err, store.ErrTerminal) {
		t.Fatalf("a second Complete: %v, want ErrTerminal", err)
	}
	run("alice", &jobs.Result{Provenance: prov("v1", "openai/gpt-4o-mini", true), Cost: price(0)})
	run("alice", &jobs.Result{Provenance: prov("v2", "local/llama", false), Tokens: jobs.TokenCount{Input: 5, Output: 5}})
	failed := run("alice", nil)
	if err := failed.Fail(ctx, &jobs.Error{Code: "x", Message: "x"}); err != nil {
		t.Fatal(err)
	}
	run("bob:with \"quotes\"", priced)

	now := time.Now()
	rows, err := store.ReadUsage(ctx, b.db.Client, now.Add(-time.Hour), now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	alice := []store.UsageRow{
		{Key: "alice", Program: "qa", Version: "v1", Model: "openai/gpt-4o-mini", UsageCounts: store.UsageCounts{
			Jobs: 2, CacheHits: 1, InputTokens: 100, CachedInputTokens: 40, OutputTokens: 10, CostMicroUSD: 25}},
		{Key: "alice", Program: "qa", Version: "v2", Model: "local/llama", UsageCounts: store.UsageCounts{
			Jobs: 1, InputTokens: 5, OutputTokens: 5, UnpricedJobs: 1}},
	}
	bob := store.UsageRow{Key: "bob:with \"quotes\"", Program: "qa", Version: "v1", Model: "openai/gpt-4o-mini", UsageCounts: store.UsageCounts{
		Jobs: 1, InputTokens: 100, CachedInputTokens: 40, OutputTokens: 10, CostMicroUSD: 25}}
	if diff := cmp.Diff(append(slices.Clone(alice), bob), rows); diff != "" {
		t.Errorf("ReadUsage (-want +got):\n%s", diff)
	}
	rows, err = store.ReadUsage(ctx, b.db.Client, now.Add(-time.Hour), now.Add(time.Hour), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(alice, rows); diff != "" {
		t.Errorf("ReadUsage of alice (-want +got):\n%s", diff)
	}
	// An hour before: nothing.
	if rows, err := store.ReadUsage(ctx, b.db.Client, now.Add(-2*time.Hour), now.Add(-time.Hour).Truncate(time.Hour), ""); err != nil || len(rows) != 0 {
		t.Errorf("ReadUsage of the hour before: %v, %v; want none", rows, err)
	}
	key := jobs.UsageStatsKey(jobs.UsageHour(now))
	ttl, err := b.db.Client.PTTL(ctx, key).Result()
	// The hash outlives its hour by the retention: up to an hour more.
	if err != nil || ttl <= 2*time.Hour || ttl > 3*time.Hour {
		t.Errorf("%s TTL = %v, %v; want in (2h, 3h]", key, ttl, err)
	}
}

func TestGroupUsage(t *testing.T) {
	t.Parallel()
	row := func(key, program, version, model string, jobs, cost int64) store.UsageRow {
		return store.UsageRow{Key: key, Program: program, Version: version, Model: model,
			UsageCounts: store.UsageCounts{Jobs: jobs, CostMicroUSD: cost, InputTokens: 10 * jobs}}
	}
	rows := []store.UsageRow{
		row("alice", "qa", "v1", "m1", 1, 5),
		row("alice", "qa", "v2", "m1", 2, 7),
		row("alice", "claims", "c1", "m2", 1, 1),
		row("bob", "qa", "v1", "m1", 3, 11),
	}
	for _, tc := range []struct {
		name string
		by   store.UsageGroup
		want []store.UsageRow
	}{
		{"key", store.UsageGroup{Key: true}, []store.UsageRow{row("alice", "", "", "", 4, 13), row("bob", "", "", "", 3, 11)}},
		{"program", store.UsageGroup{Program: true}, []store.UsageRow{row("", "claims", "", "", 1, 1), row("", "qa", "", "", 6, 23)}},
		{"key,version", store.UsageGroup{Key: true, Version: true}, []store.UsageRow{
			row("alice", "", "c1", "", 1, 1), row("alice", "", "v1", "", 1, 5), row("alice", "", "v2", "", 2, 7), row("bob", "", "v1", "", 3, 11)}},
		{"model", store.UsageGroup{Model: true}, []store.UsageRow{row("", "", "", "m1", 6, 23), row("", "", "", "m2", 1, 1)}},
		{"nothing: the total", store.UsageGroup{}, []store.UsageRow{row("", "", "", "", 7, 24)}},
	} {
		if diff := cmp.Diff(tc.want, store.GroupUsage(rows, tc.by)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}
