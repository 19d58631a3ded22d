package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// want is an event as its Go type renders it.
type want struct {
	typ  jobs.EventType
	data any
}

func render(t *testing.T, w want) string {
	t.Helper()
	b, err := json.Marshal(w.data)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkEvents compares job id's stream, and what its channel carried, with
// the Go rendering of wants: the scripts append and publish exactly the
// bytes of each event's type (see jobs' golden tests for those bytes), all
// but the queued event, which is not published.
func checkEvents(t *testing.T, b *bundle, published *redistest.Published, id string, wants ...want) {
	t.Helper()
	evs, err := b.store.Events(context.Background(), id, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var wantStream, gotStream, envelopes []string
	for _, w := range wants {
		wantStream = append(wantStream, string(w.typ)+" "+render(t, w))
	}
	for _, ev := range evs {
		gotStream = append(gotStream, string(ev.Type)+" "+string(ev.Data))
		switch ev.Type {
		case jobs.EventQueued:
			continue // not published: nobody can be listening yet
		case jobs.EventCompleted:
			// Its message carries the record's end.
			ev.Ended = recordEnd(t, b, id)
		}
		env, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		envelopes = append(envelopes, string(env))
	}
	if diff := cmp.Diff(wantStream, gotStream); diff != "" {
		t.Fatalf("job %s: stream (-want +got):\n%s", id, diff)
	}
	if diff := cmp.Diff(envelopes, published.Wait(t, jobs.Channel(id), len(envelopes))); diff != "" {
		t.Fatalf("job %s: published (-want +got):\n%s", id, diff)
	}
}

// recordEnd is job id's end as its record holds it.
func recordEnd(t *testing.T, b *bundle, id string) *jobs.Ended {
	t.Helper()
	v, err := b.db.Client.HMGet(context.Background(), jobs.JobKey(id), "attempts", "started_at", "finished_at").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := func(i int) int64 { x, _ := strconv.ParseInt(fmt.Sprint(v[i]), 10, 64); return x }
	return &jobs.Ended{Attempts: int(n(0)), StartedAt: n(1), FinishedAt: n(2)}
}

// listen collects what is published on job channels.
func listen(t *testing.T, b *bundle) *redistest.Published {
	t.Helper()
	return redistest.Listen(t, b.db, jobs.Channel("*"))
}

// TestScriptEventsAreTheirGoTypes drives every op of the record script that
// appends an event and checks each event's bytes, in the stream and on the
// channel.
func TestScriptEventsAreTheirGoTypes(t *testing.T) {
	t.Parallel()
	const budget = 10
	b := setup(t, store.Config{TokenBudgetPerDay: budget})
	ctx := context.Background()
	published := listen(t, b)
	queued := want{jobs.EventQueued, jobs.QueuedData{Queue: jobs.QueueInteractive}}
	started := func(n int) want { return want{jobs.EventStarted, jobs.StartedData{Attempt: n}} }

	// A run with everything an attempt writes: tokens (with characters
	// JSON escapes), a reset, a retry, a second attempt and the result.
	j := submit(t, b, streamed(ask("o", "q")))
	a := start(t, b, j.ID)
	const content = "<b>\"Tom & Jerry\"</b>\n\u2028é\x01"
	if err := a.Token(ctx, "answer", content); err != nil {
		t.Fatal(err)
	}
	if err := a.Reset(ctx, "the JSON adapter takes over"); err != nil {
		t.Fatal(err)
	}
	lmErr := &jobs.Error{Code: "lm_error", Message: "LM returned 503", Status: 503}
	if err := a.Retry(ctx, lmErr, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	a2 := start(t, b, j.ID)
	res := &jobs.Result{
		Outputs:    jobs.Outputs{{Name: "answer", Value: content}, {Name: "n", Value: 1.5}},
		Provenance: jobs.Provenance{Model: "m", StateSHA256: "ab", LMCalls: 2},
		Usage:      json.RawMessage(`{"m":{"total_tokens":3}}`), LatencySeconds: 0.5,
	}
	if _, err := a2.Complete(ctx, res, 0); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, b, published, j.ID, queued, started(1),
		want{jobs.EventToken, jobs.TokenData{Attempt: 1, Field: "answer", Content: content}},
		want{jobs.EventRetrying, jobs.RetryingData{Attempt: 1, Reason: "the JSON adapter takes over"}},
		want{jobs.EventRetrying, jobs.RetryingData{Attempt: 1, Reason: "LM returned 503", RetryInMS: 1500}},
		started(2),
		want{jobs.EventCompleted, jobs.CompletedData{Result: a2.Recorded(res)}})

	// Cancelled while queued, and while running.
	for _, run := range []bool{false, true} {
		j := submit(t, b, ask("o", "q"))
		wants := []want{queued}
		prev := jobs.StatusQueued
		if run {
			start(t, b, j.ID)
			wants, prev = append(wants, started(1)), jobs.StatusRunning
		}
		if _, err := b.client.Cancel(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		checkEvents(t, b, published, j.ID, append(wants, want{jobs.EventCancelled, jobs.CancelledData{Previous: prev}})...)
	}

	// Failed by its attempt.
	j = submit(t, b, ask("o", "q"))
	parseErr := &jobs.Error{Code: "parse_error", Message: "no fields"}
	if err := start(t, b, j.ID).Fail(ctx, parseErr); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, b, published, j.ID, queued, started(1), want{jobs.EventFailed, jobs.FailedData{Error: parseErr, Attempts: 1}})

	// Expired before its first start.
	j = submit(t, b, ask("o", "q"))
	if err := b.db.Client.HSet(ctx, jobs.JobKey(j.ID), "created_at", time.Now().Add(-time.Hour).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if _, out, err := b.store.Start(ctx, j.ID, "w", time.Minute); err != nil || out != store.Ended {
		t.Fatalf("start of an old job = %v, %v", out, err)
	}
	checkEvents(t, b, published, j.ID, queued,
		want{jobs.EventExpired, jobs.FailedData{Error: &jobs.Error{Code: "expired", Message: "not started within 1m0s"}}})

	// Given up: every attempt was lost.
	j = submit(t, b, ask("o", "q"))
	wants := []want{queued}
	max := b.store.Config().MaxAttempts
	for n := 1; n <= max; n++ {
		start(t, b, j.ID)
		wants = append(wants, started(n))
	}
	if _, out, err := b.store.Start(ctx, j.ID, "w", 0); err != nil || out != store.Ended {
		t.Fatalf("start past the last attempt = %v, %v", out, err)
	}
	checkEvents(t, b, published, j.ID, append(wants, want{jobs.EventFailed, jobs.FailedData{
		Error: &jobs.Error{Code: "attempts_exhausted", Message: "gave up after " + strconv.Itoa(max) +
			" attempts: the last one was lost (worker stopped or timed out)"},
		Attempts: max,
	}})...)

	// Refused at its start: the owner's budget is spent.
	if err := b.db.Client.Set(ctx, jobs.UsageKey("spent", jobs.UsageDay(time.Now())), budget, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	j = submit(t, b, ask("spent", "q"))
	if _, out, err := b.store.Start(ctx, j.ID, "w", 0); err != nil || out != store.OverBudget {
		t.Fatalf("start over budget = %v, %v", out, err)
	}
	checkEvents(t, b, published, j.ID, queued, want{jobs.EventFailed, jobs.FailedData{Error: jobs.BudgetSpent(budget, time.Now())}})
}

// start begins job id's next attempt on worker "w", failing the test unless
// it starts.
func start(t *testing.T, b *bundle, id string) *store.Attempt {
	t.Helper()
	return startOn(t, b, id, "w")
}

// startOn is start on the named worker.
func startOn(t *testing.T, b *bundle, id, worker string) *store.Attempt {
	t.Helper()
	a, out, err := b.store.Start(context.Background(), id, worker, 0)
	if err != nil || out != store.Started {
		t.Fatalf("start %s on %s: %v, %v", id, worker, out, err)
	}
	return a
}

// streamed is r asking for token events.
func streamed(r store.SubmitRequest) store.SubmitRequest {
	r.Spec.Options.Stream = true
	return r
}
