package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

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

// The usage accounting: an hourly hash per UTC hour (jobs.UsageStatsKey)
// with one field per (API key name, program, program version, model,
// counter), each completed job or batch item counted once by the script
// that records it (usage.lua). A field is the JSON array of those five
// strings, so no name can be mistaken for another whatever it holds.

// Usage counters, in the order UsageArgs passes them.
const (
	CounterJobs              = "jobs"
	CounterCacheHits         = "cache_hits"
	CounterInputTokens       = "input_tokens"
	CounterCachedInputTokens = "cached_input_tokens"
	CounterOutputTokens      = "output_tokens"
	CounterCost              = "cost_micro_usd"
	CounterUnpriced          = "unpriced_jobs"
)

// usageCounters are the counters as UsageArgs passes them and usage.lua
// writes them.
var usageCounters = [...]string{CounterJobs, CounterCacheHits, CounterInputTokens, CounterCachedInputTokens,
	CounterOutputTokens, CounterCost, CounterUnpriced}

// usageArgCount is how many arguments UsageArgs returns.
const usageArgCount = 3 + len(usageCounters)

// UsageArgs are the record or batch script's arguments that count a
// completion of r by owner's key, at now, in the usage accounting
// (usage.lua's count_usage): the hour's hash, the fields' prefix, when the
// hash expires (Config.UsageRetention past the hour's end) and the counts.
// r nil counts nothing.
func (s *Jobs) UsageArgs(now time.Time, owner string, r *jobs.Result) []any {
	args := make([]any, 0, usageArgCount)
	if r == nil {
		args = append(args, "", "", 0)
		for range usageCounters {
			args = append(args, 0)
		}
		return args
	}
	hour := now.UTC().Truncate(time.Hour)
	prefix, _ := json.Marshal([]string{owner, r.Provenance.Program, r.Provenance.ProgramVersion, r.Provenance.Model, ""})
	prefix = prefix[:len(prefix)-2] // open for the counter's name: `…,"`
	var hits, cost, unpriced int64
	if r.Provenance.CacheHit {
		hits = 1
	}
	if r.Cost == nil {
		unpriced = 1
	} else {
		cost = *r.Cost
	}
	return append(args, jobs.UsageStatsKey(jobs.UsageHour(hour)), string(prefix),
		hour.Add(time.Hour+s.cfg.UsageRetention).UnixMilli(),
		1, hits, max(r.Tokens.Input, 0), max(r.Tokens.CachedInput, 0), max(r.Tokens.Output, 0), max(cost, 0), unpriced)
}

// UsageRow is what one (key, program, version, model) used over a range
// of hours; grouped (GroupUsage), the names not grouped by are "".
type UsageRow struct {
	Key, Program, Version, Model string
	UsageCounts
}

// UsageCounts are the usage accounting's counters. InputTokens counts
// every prompt token, CachedInputTokens (part of it) those the provider's
// prompt cache served. CostMicroUSD sums the priced jobs' costs;
// UnpricedJobs counts jobs whose model has no price (their cost unknown).
type UsageCounts struct {
	Jobs, CacheHits, InputTokens, CachedInputTokens, OutputTokens, CostMicroUSD, UnpricedJobs int64
}

// Add adds o's counts to c.
func (c *UsageCounts) Add(o UsageCounts) {
	c.Jobs += o.Jobs
	c.CacheHits += o.CacheHits
	c.InputTokens += o.InputTokens
	c.CachedInputTokens += o.CachedInputTokens
	c.OutputTokens += o.OutputTokens
	c.CostMicroUSD += o.CostMicroUSD
	c.UnpricedJobs += o.UnpricedJobs
}

// counter is c's counter named name (nil: not one).
func (c *UsageCounts) counter(name string) *int64 {
	switch name {
	case CounterJobs:
		return &c.Jobs
	case CounterCacheHits:
		return &c.CacheHits
	case CounterInputTokens:
		return &c.InputTokens
	case CounterCachedInputTokens:
		return &c.CachedInputTokens
	case CounterOutputTokens:
		return &c.OutputTokens
	case CounterCost:
		return &c.CostMicroUSD
	case CounterUnpriced:
		return &c.UnpricedJobs
	}
	return nil
}

// usageTuple is a row's names.
type usageTuple struct{ key, program, version, model string }

// ReadUsage sums the usage accounting over the UTC hours from from's hour
// up to to (exclusive; an hour to falls within counts), one row per (key,
// program, version, model), ordered by them; onlyKey != "" keeps that
// key's rows alone. The hours' hashes are read in one pipeline.
func ReadUsage(ctx context.Context, rdb redis.UniversalClient, from, to time.Time, onlyKey string) ([]UsageRow, error) {
	pipe := rdb.Pipeline()
	var cmds []*redis.MapStringStringCmd
	for h := from.UTC().Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		cmds = append(cmds, pipe.HGetAll(ctx, jobs.UsageStatsKey(jobs.UsageHour(h))))
	}
	if len(cmds) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	sums := map[usageTuple]*UsageCounts{}
	for _, cmd := range cmds {
		for field, value := range cmd.Val() {
			var f [5]string
			if json.Unmarshal([]byte(field), &f) != nil || (onlyKey != "" && f[0] != onlyKey) {
				continue
			}
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				continue
			}
			t := usageTuple{f[0], f[1], f[2], f[3]}
			c := sums[t]
			if c == nil {
				c = &UsageCounts{}
				sums[t] = c
			}
			if p := c.counter(f[4]); p != nil {
				*p += n
			}
		}
	}
	rows := make([]UsageRow, 0, len(sums))
	for t, c := range sums {
		rows = append(rows, UsageRow{Key: t.key, Program: t.program, Version: t.version, Model: t.model, UsageCounts: *c})
	}
	sortUsage(rows)
	return rows, nil
}

// UsageGroup says which names GroupUsage keeps.
type UsageGroup struct{ Key, Program, Version, Model bool }

// GroupUsage sums rows by the names g keeps (the others ""), ordered by
// them.
func GroupUsage(rows []UsageRow, g UsageGroup) []UsageRow {
	keep := func(ok bool, s string) string {
		if ok {
			return s
		}
		return ""
	}
	sums := map[usageTuple]*UsageCounts{}
	var order []usageTuple
	for _, r := range rows {
		t := usageTuple{keep(g.Key, r.Key), keep(g.Program, r.Program), keep(g.Version, r.Version), keep(g.Model, r.Model)}
		c := sums[t]
		if c == nil {
			c = &UsageCounts{}
			sums[t] = c
			order = append(order, t)
		}
		c.Add(r.UsageCounts)
	}
	out := make([]UsageRow, 0, len(order))
	for _, t := range order {
		out = append(out, UsageRow{Key: t.key, Program: t.program, Version: t.version, Model: t.model, UsageCounts: *sums[t]})
	}
	sortUsage(out)
	return out
}

func sortUsage(rows []UsageRow) {
	slices.SortFunc(rows, func(a, b UsageRow) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Program, b.Program),
			cmp.Compare(a.Version, b.Version), cmp.Compare(a.Model, b.Model))
	})
}
