package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// usageBody is GET /v1/usage's answer.
type usageBody struct {
	Object  string           `json:"object"`
	From    string           `json:"from"`
	To      string           `json:"to"`
	GroupBy []string         `json:"group_by"`
	Data    []map[string]any `json:"data"`
	Total   map[string]any   `json:"total"`
}

// completeAs records a completed job of owner's, as a worker would: its
// result's provenance, tokens and cost go to the usage accounting.
func (b *bundle) completeAs(t *testing.T, owner, program, version, model string, tokens jobs.TokenCount, cost *int64) {
	t.Helper()
	ctx := context.Background()
	s := jobs.Spec{ClientSpec: jobs.QuestionSpec("q"), ServerSpec: jobs.ServerSpec{Owner: owner}}
	sub, err := b.client.Submit(ctx, store.SubmitRequest{Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	a, out, err := b.store.Start(ctx, sub.Job.ID, "w", 0)
	if err != nil || out != store.Started {
		t.Fatalf("start: %v %v", out, err)
	}
	r := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}},
		Provenance: jobs.Provenance{Program: program, ProgramVersion: version, Model: model}, Tokens: tokens, Cost: cost}
	if _, err := a.Complete(ctx, r, tokens.Input+tokens.Output); err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) usage(t *testing.T, key string, query url.Values) usageBody {
	t.Helper()
	resp, body := b.do(t, "GET", "/v1/usage?"+query.Encode(), nil, bearer(key))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/usage?%s: %d %s", query.Encode(), resp.StatusCode, body)
	}
	var u usageBody
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// counts is a row's counters as the answer has them (JSON numbers).
func counts(jobs, input, cached, output, cost, unpriced float64) map[string]any {
	return map[string]any{"jobs": jobs, "cache_hits": 0.0, "input_tokens": input, "cached_input_tokens": cached,
		"output_tokens": output, "total_tokens": input + output, "cost_micro_usd": cost, "unpriced_jobs": unpriced}
}

func row(names map[string]any, c map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range names {
		out[k] = v
	}
	return out
}

// TestUsage: a key sees its own usage only, grouped as asked; an admin key
// sees every key's; the range is whole hours.
func TestUsage(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	price := func(n int64) *int64 { return &n }
	b.completeAs(t, "alice", "qa", "v1", "openai/gpt-4o-mini", jobs.TokenCount{Input: 100, CachedInput: 20, Output: 10}, price(30))
	b.completeAs(t, "alice", "claims", "c1", "openai/gpt-4o-mini", jobs.TokenCount{Input: 50, Output: 5}, price(12))
	b.completeAs(t, "bob", "qa", "v2", "local/llama", jobs.TokenCount{Input: 7, Output: 3}, nil)

	alice := b.usage(t, aliceKey, nil)
	if alice.Object != "usage" || !cmp.Equal(alice.GroupBy, []string{"key"}) {
		t.Errorf("object %q, group_by %v; want usage, [key]", alice.Object, alice.GroupBy)
	}
	wantAlice := counts(2, 150, 20, 15, 42, 0)
	if diff := cmp.Diff([]map[string]any{row(map[string]any{"key": "alice"}, wantAlice)}, alice.Data); diff != "" {
		t.Errorf("alice's usage (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantAlice, alice.Total); diff != "" {
		t.Errorf("alice's total (-want +got):\n%s", diff)
	}
	from, err1 := time.Parse(time.RFC3339, alice.From)
	to, err2 := time.Parse(time.RFC3339, alice.To)
	if err1 != nil || err2 != nil || from.Truncate(time.Hour) != from || to.Truncate(time.Hour) != to ||
		to.Sub(from) < 24*time.Hour || to.Sub(from) > 25*time.Hour {
		t.Errorf("range %s to %s: want the last day in whole hours", alice.From, alice.To)
	}

	// bob, grouped by program and version: his row only.
	bob := b.usage(t, bobKey, url.Values{"group_by": {"program,version"}})
	if diff := cmp.Diff([]map[string]any{row(map[string]any{"program": "qa", "version": "v2"}, counts(1, 7, 0, 3, 0, 1))}, bob.Data); diff != "" {
		t.Errorf("bob's usage (-want +got):\n%s", diff)
	}

	// The admin key: everyone's.
	all := b.usage(t, opsKey, url.Values{"group_by": {"key"}})
	want := []map[string]any{row(map[string]any{"key": "alice"}, wantAlice), row(map[string]any{"key": "bob"}, counts(1, 7, 0, 3, 0, 1))}
	if diff := cmp.Diff(want, all.Data); diff != "" {
		t.Errorf("the admin's usage by key (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(counts(3, 157, 20, 18, 42, 1), all.Total); diff != "" {
		t.Errorf("the admin's total (-want +got):\n%s", diff)
	}
	byModel := b.usage(t, opsKey, url.Values{"group_by": {"model,program"}})
	want = []map[string]any{
		row(map[string]any{"program": "qa", "model": "local/llama"}, counts(1, 7, 0, 3, 0, 1)),
		row(map[string]any{"program": "claims", "model": "openai/gpt-4o-mini"}, counts(1, 50, 0, 5, 12, 0)),
		row(map[string]any{"program": "qa", "model": "openai/gpt-4o-mini"}, counts(1, 100, 20, 10, 30, 0)),
	}
	if diff := cmp.Diff(want, byModel.Data); diff != "" || !cmp.Equal(byModel.GroupBy, []string{"model", "program"}) {
		t.Errorf("the admin's usage by model and program, group_by %v (-want +got):\n%s", byModel.GroupBy, diff)
	}

	// A range before the jobs: nothing.
	old := b.usage(t, opsKey, url.Values{"from": {"2020-01-01"}, "to": {"2020-01-02T00:00:00Z"}})
	if len(old.Data) != 0 || old.From != "2020-01-01T00:00:00Z" || old.To != "2020-01-02T00:00:00Z" {
		t.Errorf("2020's usage %+v, want none over that day", old)
	}
}

// TestUsageBadQuery: a bad value answers 422 naming the parameter.
func TestUsageBadQuery(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{}), jobs: store.Config{UsageRetention: 48 * time.Hour}})
	for _, tc := range []struct {
		query, field, message string
	}{
		{"from=yesterday", "from", `from must be an RFC 3339 time or a yyyy-mm-dd day, got "yesterday"`},
		{"to=2026-13-01", "to", `to must be an RFC 3339 time or a yyyy-mm-dd day, got "2026-13-01"`},
		{"from=2026-01-02&to=2026-01-01", "to", "to (2026-01-01T00:00:00Z) must come after from (2026-01-02T00:00:00Z)"},
		{"from=2026-01-01&to=2026-01-01", "to", "to (2026-01-01T00:00:00Z) must come after from (2026-01-01T00:00:00Z)"},
		{"from=2026-01-01&to=2026-01-04", "from", "from and to may be at most USAGE_RETENTION (48h) apart, which is as long as usage is kept; got 72h"},
		{"group_by=colour", "group_by", `group_by must be a comma-separated list of key, program, version, model, got "colour"`},
		{"group_by=key,key", "group_by", "group_by names key twice: name it once"},
		{"group_by=", "", ""}, // empty: the default
		{"limit=5", "limit", "unknown query parameter \"limit\": this endpoint takes from, to, group_by"},
		{"from=2026-01-01&from=2026-01-02", "from", "query parameter from is given more than once: give it once"},
	} {
		resp, body := b.do(t, "GET", "/v1/usage?"+tc.query, nil, bearer(aliceKey))
		if tc.field == "" {
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d %s, want 200", tc.query, resp.StatusCode, body)
			}
			continue
		}
		var e struct {
			Error struct{ Code, Message, Field string }
		}
		if resp.StatusCode != http.StatusUnprocessableEntity || json.Unmarshal(body, &e) != nil ||
			e.Error.Code != "validation_error" || e.Error.Field != tc.field || e.Error.Message != tc.message {
			t.Errorf("%s: %d %s, want 422 on %s: %s", tc.query, resp.StatusCode, body, tc.field, tc.message)
		}
	}
}
