package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// TestRecordCommands counts the commands each step of a job's record runs
// in Redis, the record script's inner commands included, as INFO
// commandstats counts them (a server of the test's own, nothing else on
// it): the figures cmd/qa's TestJobRedisBudget adds up.
func TestRecordCommands(t *testing.T) {
	t.Parallel()
	db := redistest.NewServer(t)
	jobStore, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	client := store.NewClient(db.Client, jobStore)
	ctx := context.Background()
	count := func(step func()) int64 {
		t.Helper()
		if err := db.Client.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		step()
		return commands(t, db.Client)
	}
	job := func() (id string, a *store.Attempt) {
		t.Helper()
		s, err := client.Submit(ctx, streamed(ask("o", "q")))
		if err != nil {
			t.Fatal(err)
		}
		a, _, err = jobStore.Start(ctx, s.Job.ID, "w", 0)
		if err != nil {
			t.Fatal(err)
		}
		return s.Job.ID, a
	}
	// A priced answer of the LM (not the cache) without cached tokens: the
	// usual job.
	cost := int64(7)
	result := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}, Provenance: jobs.Provenance{LMCalls: 1},
		Tokens: jobs.TokenCount{Input: 2, Output: 1}, Cost: &cost}
	// A first job loads the scripts, registers the queue and starts the
	// owner's usage counter of the day.
	_, a := job()
	if _, err := a.Complete(ctx, result, 3); err != nil {
		t.Fatal(err)
	}

	var id string
	got := map[string]int64{
		"submit": count(func() {
			s, err := client.Submit(ctx, streamed(ask("o", "q")))
			if err != nil {
				t.Fatal(err)
			}
			id = s.Job.ID
		}),
		"start": count(func() {
			if a, _, err = jobStore.Start(ctx, id, "w", 0); err != nil {
				t.Fatal(err)
			}
		}),
		"token": count(func() {
			if err := a.Token(ctx, "answer", "a"); err != nil {
				t.Fatal(err)
			}
		}),
		"complete": count(func() {
			if _, err := a.Complete(ctx, result, 3); err != nil {
				t.Fatal(err)
			}
		}),
	}
	// The last streamed pieces go with the result: no write of their own.
	id, a = job()
	a.Trail([]store.Piece{{Field: "answer", Content: "b"}, {Content: "the JSON adapter takes over"}})
	got["complete with 2 pieces"] = count(func() {
		if _, err := a.Complete(ctx, result, 3); err != nil {
			t.Fatal(err)
		}
	})
	// The LM cache's entries go with the result, and only with a result
	// recorded.
	_, withCache := job()
	withCache.Cache([]store.CacheEntry{{Key: "qa:lmcache:t:k", Value: []byte(`{"text":"a"}`), TTL: time.Minute}})
	got["complete with a cache entry"] = count(func() {
		if _, err := withCache.Complete(ctx, result, 3); err != nil {
			t.Fatal(err)
		}
	})
	if v, err := db.Client.Get(ctx, "qa:lmcache:t:k").Result(); v != `{"text":"a"}` || err != nil {
		t.Errorf("cache entry %q, %v; want the one Complete carried", v, err)
	}
	if ttl := db.Client.PTTL(ctx, "qa:lmcache:t:k").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("cache entry ttl %v, want at most a minute", ttl)
	}
	withCache.Cache([]store.CacheEntry{{Key: "qa:lmcache:t:refused", Value: []byte("x")}})
	if _, err := withCache.Complete(ctx, result, 3); !errors.Is(err, store.ErrTerminal) {
		t.Fatalf("a second complete: %v, want ErrTerminal", err)
	}
	if n := db.Client.Exists(ctx, "qa:lmcache:t:refused").Val(); n != 0 {
		t.Errorf("a refused complete set its cache entry")
	}
	evs, err := jobStore.Events(ctx, id, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		types = append(types, string(ev.Type)+" "+string(ev.Data))
	}
	wantTypes := []string{`queued {"queue":"interactive"}`, `started {"attempt":1}`,
		`token {"attempt":1,"field":"answer","content":"b"}`, `retrying {"attempt":1,"reason":"the JSON adapter takes over","retry_in_ms":0}`}
	if len(types) != 5 || !slices.Equal(types[:4], wantTypes) || !strings.HasPrefix(types[4], "completed ") {
		t.Errorf("events %q, want %q and completed", types, wantTypes)
	}

	want := map[string]int64{
		// create: EVALSHA, LLEN (QUEUE_MAX_PENDING), HSET, PEXPIRE, XADD,
		// PEXPIRE; asynq's enqueue: EVALSHA, EXISTS, HSET, LPUSH.
		"submit": 10,
		// EVALSHA, HGETALL (the record it hands the worker, and the fields
		// it reads: one read instead of HMGET before and HGETALL after),
		// SADD (the worker's index of its running jobs, for fast recovery),
		// HSET (started_at with it on a first start: no HSETNX), XADD,
		// PUBLISH.
		"start": 6,
		// EVALSHA, HMGET (stream_seq with the rest), HSET, XADD, PUBLISH.
		"token": 5,
		// EVALSHA, HMGET, HSET (lm_calls with the result), PEXPIRE record,
		// PEXPIRE events, XADD, PUBLISH (the record's end with it), INCRBY
		// (the usage counter exists: no PEXPIRE), SREM (out of the worker's
		// index), HINCRBY ×4 (the hour's usage accounting: jobs,
		// input_tokens, output_tokens, cost_micro_usd; its tuple's first
		// job of the hour also PEXPIREATs the hash).
		"complete": 13,
		// and XADD, PUBLISH each.
		"complete with 2 pieces": 17,
		// and SET (PX with it).
		"complete with a cache entry": 14,
	}
	for step, n := range want {
		if got[step] != n {
			t.Errorf("%s: %d commands, want %d", step, got[step], n)
		}
	}
	t.Logf("commands: %v", got)
}

// commands is the calls INFO commandstats counts, the INFO itself aside.
func commands(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" || name == "cmdstat_config|resetstat" {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		v, _ := strconv.ParseInt(calls, 10, 64)
		n += v
	}
	return n
}

// TestStartAllocs bounds a start's allocations: its reply holds what the
// worker runs (the spec, the checkpoints), not the whole record, and only
// the spec is decoded (103 allocations before, with the record's every
// field read and decoded; 74 after).
func TestStartAllocs(t *testing.T) {
	if store.RaceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	db := redistest.NewServer(t)
	jobStore, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	client := store.NewClient(db.Client, jobStore)
	ctx := context.Background()
	const runs = 50
	ids := make([]string, runs+1) // AllocsPerRun runs once more to warm up
	for i := range ids {
		s, err := client.Submit(ctx, streamed(ask("o", "q")))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = s.Job.ID
	}
	next := 0
	allocs := testing.AllocsPerRun(runs, func() {
		a, out, e := jobStore.Start(ctx, ids[next], "w", 0)
		next++
		if e != nil || out != store.Started || a.Spec.Question() != "q" {
			err = fmt.Errorf("start: %v, outcome %v", e, out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.0f allocations per Start", allocs)
	if allocs > 80 {
		t.Errorf("%.0f allocations per Start, want at most 80", allocs)
	}
}
