package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

type bundle struct {
	db     *redistest.DB
	store  *store.Jobs
	client *store.Client
	hub    *store.Hub
}

func setup(t *testing.T, cfg store.Config) *bundle {
	t.Helper()
	db := redistest.New(t)
	jobStore, err := store.NewJobs(db.Client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hub := store.NewHub(ctx, db.Client, zerolog.Nop())
	done := make(chan struct{})
	go func() { hub.Run(ctx); close(done) }()
	t.Cleanup(func() { _ = hub.Close(); cancel(); <-done })
	return &bundle{db: db, store: jobStore, client: store.NewClient(db.Client, jobStore), hub: hub}
}

// ask is the request of owner's question q, on the interactive queue.
func ask(owner, q string) store.SubmitRequest {
	return store.SubmitRequest{Spec: jobs.Spec{ClientSpec: jobs.QuestionSpec(q), ServerSpec: jobs.ServerSpec{Owner: owner}}}
}

func submit(t *testing.T, b *bundle, req store.SubmitRequest) *jobs.Job {
	t.Helper()
	s, err := b.client.Submit(context.Background(), req)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return s.Job
}

// get reads job id's record, failing the test if it cannot.
func get(t *testing.T, b *bundle, id string) *jobs.Job {
	t.Helper()
	j, err := b.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// events reads all of job id's events, failing the test if it cannot.
func events(t *testing.T, b *bundle, id string) []jobs.Event {
	t.Helper()
	evs, err := b.store.Events(context.Background(), id, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// checkEventTypes fails the test unless evs are of the types want, in order.
func checkEventTypes(t *testing.T, evs []jobs.Event, want ...jobs.EventType) {
	t.Helper()
	if diff := cmp.Diff(want, eventTypes(evs)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
}

func eventTypes(evs []jobs.Event) []jobs.EventType {
	out := make([]jobs.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func TestLifecycleRecordsAndEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	req := ask("alice", "Why?")
	req.Spec.Options.Stream = true
	j := submit(t, b, req)
	if j.Status != jobs.StatusQueued || j.Spec.Queue != jobs.QueueInteractive || j.Spec.Owner != "alice" || j.Spec.Question() != "Why?" || !j.Spec.Options.Stream {
		t.Fatalf("submitted job = %+v", j)
	}
	// Submit answers without reading the record back: it must say the same.
	stored := get(t, b, j.ID)
	if diff := cmp.Diff(stored, j); diff != "" {
		t.Fatalf("submitted job differs from the record (-record +submitted):\n%s", diff)
	}
	a, out, err := b.store.Start(ctx, j.ID, "w1", time.Minute)
	if err != nil || out != store.Started || a.Number != 1 {
		t.Fatalf("start = %v %v %v", a, out, err)
	}
	for _, tok := range []string{"Hel", "lo"} {
		if err := a.Token(ctx, "answer", tok); err != nil {
			t.Fatal(err)
		}
	}
	res := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "Hello"}}, Usage: json.RawMessage(`{}`)}
	if _, err := a.Complete(ctx, res, 0); err != nil {
		t.Fatal(err)
	}
	// A second completion (asynq ran the task twice) is refused.
	if _, err := a.Complete(ctx, res, 0); !errors.Is(err, store.ErrTerminal) {
		t.Fatalf("second complete: %v, want ErrTerminal", err)
	}
	if err := a.Token(ctx, "answer", "late"); !errors.Is(err, store.ErrTerminal) {
		t.Fatalf("token after end: %v, want ErrTerminal", err)
	}
	got := get(t, b, j.ID)
	if got.Status != jobs.StatusCompleted || got.Result.Answer("answer") != "Hello" || got.Result.Provenance.Attempts != 1 || got.FinishedAt == nil {
		t.Fatalf("record = %+v", got)
	}
	evs := events(t, b, j.ID)
	checkEventTypes(t, evs, jobs.EventQueued, jobs.EventStarted, jobs.EventToken, jobs.EventToken, jobs.EventCompleted)
	for i := 1; i < len(evs); i++ {
		if jobs.CompareIDs(evs[i-1].ID, evs[i].ID) >= 0 {
			t.Fatalf("event ids out of order: %s then %s", evs[i-1].ID, evs[i].ID)
		}
	}
	// Resuming after the second event returns exactly the rest.
	rest, err := b.store.Events(ctx, j.ID, evs[1].ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(evs[2:], rest); diff != "" {
		t.Fatalf("resume (-want +got):\n%s", diff)
	}
	ttl := b.db.Client.PTTL(ctx, jobs.JobKey(j.ID)).Val()
	if ttl <= 0 || ttl > 24*time.Hour {
		t.Fatalf("terminal record TTL = %v, want RESULT_TTL", ttl)
	}
}

func TestStaleAttemptCannotWrite(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	j := submit(t, b, ask("", "q"))
	first := startOn(t, b, j.ID, "w1")
	// The first worker vanished; asynq ran the task again elsewhere.
	second := startOn(t, b, j.ID, "w2")
	if second.Number != 2 {
		t.Fatalf("second start: attempt %d, want 2", second.Number)
	}
	if err := first.Token(ctx, "answer", "x"); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale token: %v, want ErrStale", err)
	}
	if err := first.Retry(ctx, &jobs.Error{Code: "lm_error", Message: "boom"}, time.Second); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale retry: %v, want ErrStale", err)
	}
	if err := second.Token(ctx, "answer", "y"); err != nil {
		t.Fatalf("current token: %v", err)
	}
}

// TestStaleAttemptCannotEnd: a superseded attempt's Complete and Fail are
// refused like its other writes, whether the newer attempt is running or
// waiting to run again, and write nothing: no status, result, event, LM
// calls or token usage. The current attempt then completes once.
func TestStaleAttemptCannotEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	j := submit(t, b, ask("alice", "q"))
	first := startOn(t, b, j.ID, "w1")
	first.LMCalls = 3
	// The first worker lost its lease; asynq ran the task again elsewhere.
	second := startOn(t, b, j.ID, "w2")
	if second.Number != 2 {
		t.Fatalf("second start: attempt %d, want 2", second.Number)
	}
	stale := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "stale"}}, Provenance: jobs.Provenance{LMCalls: 3}}
	refused := func(when string) {
		t.Helper()
		if _, err := first.Complete(ctx, stale, 1000); !errors.Is(err, store.ErrStale) {
			t.Fatalf("stale complete while %s: %v, want ErrStale", when, err)
		}
		if err := first.Fail(ctx, &jobs.Error{Code: "lm_error", Message: "stale"}); !errors.Is(err, store.ErrStale) {
			t.Fatalf("stale fail while %s: %v, want ErrStale", when, err)
		}
	}
	refused("the newer attempt runs")
	second.LMCalls = 1
	if err := second.Retry(ctx, &jobs.Error{Code: "lm_error", Message: "cut off"}, 0); err != nil {
		t.Fatal(err)
	}
	refused("the job waits to run again")
	rec := b.db.Client.HMGet(ctx, jobs.JobKey(j.ID), "status", "attempts", "lm_calls", "result").Val()
	if diff := cmp.Diff([]any{"retrying", "2", "1", nil}, rec); diff != "" {
		t.Fatalf("record after the stale writes (-want +got):\n%s", diff)
	}

	third := startOn(t, b, j.ID, "w3")
	if third.Number != 3 {
		t.Fatalf("third start: attempt %d, want 3", third.Number)
	}
	refused("the newest attempt runs")
	r := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "fresh"}}, Provenance: jobs.Provenance{LMCalls: 1}}
	if _, err := third.Complete(ctx, r, 7); err != nil {
		t.Fatalf("current complete: %v", err)
	}
	// Once ended, the job refuses every attempt as ended (the worker's
	// repeat after a lost reply included), not as stale.
	if _, err := third.Complete(ctx, r, 7); !errors.Is(err, store.ErrTerminal) {
		t.Fatalf("repeated complete: %v, want ErrTerminal", err)
	}
	if _, err := first.Complete(ctx, stale, 1000); !errors.Is(err, store.ErrTerminal) {
		t.Fatalf("stale complete after the end: %v, want ErrTerminal", err)
	}
	got := get(t, b, j.ID)
	if got.Status != jobs.StatusCompleted || got.Result.Answer("answer") != "fresh" || got.Error != nil {
		t.Fatalf("record = %+v", got)
	}
	if p := got.Result.Provenance; p.LMCalls != 2 || p.Attempts != 3 {
		t.Fatalf("provenance = %+v, want the current attempts' 2 LM calls over 3 attempts", p)
	}
	evs := events(t, b, j.ID)
	checkEventTypes(t, evs, jobs.EventQueued, jobs.EventStarted, jobs.EventStarted, jobs.EventRetrying, jobs.EventStarted, jobs.EventCompleted)
	// Only the result recorded counts toward its owner's budget.
	if used, err := store.TokensUsed(ctx, b.db.Client, "alice", jobs.UsageDay(time.Now())); err != nil || used != 7 {
		t.Fatalf("tokens used = %d, %v; want 7", used, err)
	}
}

func TestAttemptsExhaustedAndExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{MaxAttempts: 2})
	ctx := context.Background()
	j := submit(t, b, ask("", "q"))
	for i := 0; i < 2; i++ {
		if _, out, err := b.store.Start(ctx, j.ID, "w", 0); err != nil || out != store.Started {
			t.Fatalf("start %d: %v %v", i, out, err)
		}
	}
	if _, out, err := b.store.Start(ctx, j.ID, "w", 0); err != nil || out != store.Ended {
		t.Fatalf("third start: %v %v, want Ended", out, err)
	}
	got, _ := b.store.Get(ctx, j.ID)
	if got.Status != jobs.StatusFailed || got.Error == nil || got.Error.Code != "attempts_exhausted" {
		t.Fatalf("record = %+v %+v", got, got.Error)
	}

	j2 := submit(t, b, ask("", "q"))
	// The job has waited an hour (backdated rather than slept for).
	old := time.Now().Add(-time.Hour).UnixMilli()
	if err := b.db.Client.HSet(ctx, jobs.JobKey(j2.ID), "created_at", old).Err(); err != nil {
		t.Fatal(err)
	}
	if _, out, err := b.store.Start(ctx, j2.ID, "w", time.Minute); err != nil || out != store.Ended {
		t.Fatalf("start of an old job: %v %v, want Ended", out, err)
	}
	got, _ = b.store.Get(ctx, j2.ID)
	if got.Status != jobs.StatusExpired || got.Error.Code != "expired" {
		t.Fatalf("record = %+v", got)
	}
}

func TestCancelIsTerminalAndNotified(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	j := submit(t, b, ask("", "q"))
	a := startOn(t, b, j.ID, "w")
	ps := b.db.Client.Subscribe(ctx, jobs.CancelChannel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := b.client.Cancel(ctx, j.ID)
	if err != nil || got.Status != jobs.StatusCancelled {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil || msg.Payload != j.ID {
		t.Fatalf("cancel notice = %v %v", msg, err)
	}
	if _, err := a.Complete(ctx, &jobs.Result{}, 0); !errors.Is(err, store.ErrTerminal) {
		t.Fatalf("complete after cancel: %v, want ErrTerminal", err)
	}
	if _, err := b.client.Cancel(ctx, j.ID); !errors.Is(err, store.ErrTerminal) {
		t.Fatalf("second cancel: %v, want ErrTerminal", err)
	}
	if err := b.client.Delete(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Get(ctx, j.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	req := ask("o", "same")
	req.IdempotencyKey = "k1"
	first := submit(t, b, req)
	again, err := b.client.Submit(ctx, req)
	if err != nil || !again.Replayed || again.Job.ID != first.ID {
		t.Fatalf("replay = %+v %v", again, err)
	}
	other := ask("o", "different")
	other.IdempotencyKey = req.IdempotencyKey
	if _, err := b.client.Submit(ctx, other); !errors.Is(err, store.ErrIdempotencyMismatch) {
		t.Fatalf("other body: %v, want ErrIdempotencyMismatch", err)
	}
	// Keys are scoped per owner.
	mine := ask("p", "same")
	mine.IdempotencyKey = req.IdempotencyKey
	if s, err := b.client.Submit(ctx, mine); err != nil || s.Replayed {
		t.Fatalf("another owner's key: %+v %v", s, err)
	}
	// A request still being accepted: its record says not yet enqueued.
	if err := b.db.Client.HSet(ctx, jobs.JobKey(first.ID), "enqueued", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Submit(ctx, req); !errors.Is(err, store.ErrIdempotencyInProgress) {
		t.Fatalf("concurrent duplicate: %v, want ErrIdempotencyInProgress", err)
	}
	// Not marked enqueued, but a worker has started it: it was enqueued, so
	// a replay gets it.
	if err := b.db.Client.HSet(ctx, jobs.JobKey(first.ID), "status", "running").Err(); err != nil {
		t.Fatal(err)
	}
	if s, err := b.client.Submit(ctx, req); err != nil || !s.Replayed || s.Job.ID != first.ID {
		t.Fatalf("replay of a started job: %+v %v", s, err)
	}
	// Abandoned: the request that wrote it died before enqueueing, longer
	// ago than any live submit takes. The key must not stay stuck: a replay
	// submits afresh and the abandoned record goes.
	long := time.Now().Add(-time.Hour).UnixMilli()
	if err := b.db.Client.HSet(ctx, jobs.JobKey(first.ID), "status", "queued", "created_at", long).Err(); err != nil {
		t.Fatal(err)
	}
	fresh, err := b.client.Submit(ctx, req)
	if err != nil || fresh.Replayed || fresh.Job.ID == first.ID {
		t.Fatalf("replay after an abandoned submit: %+v %v; want a new job", fresh, err)
	}
	if _, err := b.store.Get(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("abandoned record: %v, want it gone", err)
	}
	if s, err := b.client.Submit(ctx, req); err != nil || !s.Replayed || s.Job.ID != fresh.Job.ID {
		t.Fatalf("replay of the new job: %+v %v", s, err)
	}
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{MaxPending: 2})
	for i := 0; i < 2; i++ {
		submit(t, b, ask("", "q"))
	}
	if _, err := b.client.Submit(context.Background(), ask("", "q")); !errors.Is(err, store.ErrQueueFull) {
		t.Fatalf("third submit: %v, want ErrQueueFull", err)
	}
	// Batch items are not limited by the interactive bound.
	onBatch := ask("", "q")
	onBatch.Spec.Queue = jobs.QueueBatch
	submit(t, b, onBatch)
}

func TestWaitReturnsOnTerminalEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	j := submit(t, b, ask("", "q"))
	a := startOn(t, b, j.ID, "w")
	type result struct {
		j   *jobs.Job
		err error
	}
	done := make(chan result, 1)
	go func() {
		j, err := b.store.Wait(ctx, b.hub, j.ID, time.Hour)
		done <- result{j, err}
	}()
	// Wait until the waiter is subscribed, then end the job.
	testwait.Until(t, "the waiter to subscribe", func() bool {
		select {
		case r := <-done:
			t.Fatalf("wait returned early: %+v", r)
		default:
		}
		return b.hub.Subscribers() > 0
	})
	if err := a.Token(ctx, "answer", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "x"}}}, 0); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.j.Status != jobs.StatusCompleted {
		t.Fatalf("wait = %+v %v", r.j, r.err)
	}
}

// TestWaitOutlastsATokenBurst: a wait's subscription gets the job's end
// only, so a burst of token events longer than a subscriber's buffer, sent
// while the wait is not reading, neither drops it nor ends it early with the
// running job (each wait once had a full subscriber's buffer for them).
func TestWaitOutlastsATokenBurst(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	j := submit(t, b, ask("", "q"))
	a := startOn(t, b, j.ID, "w")
	f, err := b.store.OpenWait(ctx, b.hub, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; i < store.DefaultSubscriberBuffer+10; i++ {
		if err := a.Token(ctx, "answer", "x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "x"}}}, 0); err != nil {
		t.Fatal(err)
	}
	got, err := f.Wait(ctx, time.Hour)
	if err != nil || got.Status != jobs.StatusCompleted {
		t.Fatalf("wait = %+v %v, want the completed job", got, err)
	}
}

// TestWaitSurvivesPubSubReconnect: a wait whose pub/sub connection is cut
// while its job ends still returns the ended job: the end comes live after
// the reconnect, or, lost meanwhile, from the record the resync reads (no
// heartbeat recheck here to fall back on).
func TestWaitSurvivesPubSubReconnect(t *testing.T) {
	t.Parallel()
	db := redistest.NewServer(t) // CLIENT KILL must not touch other tests
	jobStore, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hub := store.NewHub(ctx, db.Client, zerolog.Nop())
	done := make(chan struct{})
	go func() { hub.Run(ctx); close(done) }()
	t.Cleanup(func() { _ = hub.Close(); cancel(); <-done })
	j, err := store.NewClient(db.Client, jobStore).Submit(ctx, ask("", "q"))
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := jobStore.Start(ctx, j.Job.ID, "w", 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := store.Follow(ctx, store.FollowConfig{Hub: hub, Heartbeat: time.Hour}, jobStore.Source(j.Job.ID), store.FromNow)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Record().Status != jobs.StatusRunning {
		t.Fatalf("record at the start of the wait = %+v", f.Record())
	}
	waited := make(chan *jobs.Job, 1)
	go func() {
		j, err := f.Wait(ctx, time.Hour)
		if err != nil {
			t.Error(err)
		}
		waited <- j
	}()
	if err := db.Client.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Complete(ctx, &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "x"}}}, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-waited:
		if got == nil || got.Status != jobs.StatusCompleted || got.Result.Answer("answer") != "x" {
			t.Fatalf("wait = %+v", got)
		}
	case <-time.After(time.Minute): // a hang guard, not a timing bound
		t.Fatal("the wait did not end")
	}
}

func TestHubDeliversInOrderAndDropsSlowSubscriber(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	j := submit(t, b, ask("", "q"))
	a, _, _ := b.store.Start(ctx, j.ID, "w", 0)
	fast, err := b.hub.Subscribe(ctx, jobs.Channel(j.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	slow, err := b.hub.Subscribe(ctx, jobs.Channel(j.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	n := store.DefaultSubscriberBuffer + 10
	got := make(chan []string, 1)
	go func() {
		var seen []string
		for ev := range fast.C() {
			var d jobs.TokenData
			_ = json.Unmarshal(ev.Data, &d)
			seen = append(seen, d.Content)
			if len(seen) == n {
				break
			}
		}
		got <- seen
	}()
	var want []string
	for i := 0; i < n; i++ {
		c := string(rune('a' + i%26))
		want = append(want, c)
		if err := a.Token(ctx, "answer", c); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(want, <-got); diff != "" {
		t.Fatalf("fast subscriber (-want +got):\n%s", diff)
	}
	// The slow one never read: it overflowed and was dropped, alone.
	for range slow.C() {
	}
	if !errors.Is(slow.Err(), store.ErrSlowSubscriber) {
		t.Fatalf("slow subscriber err = %v", slow.Err())
	}
}

// TestLMCallsAddUpOverAttempts: each attempt's end write adds its LM calls to
// the record, and the result reports them all.
func TestLMCallsAddUpOverAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	j := submit(t, b, ask("", "q"))
	a := start(t, b, j.ID)
	a.LMCalls = 1
	if err := a.Retry(ctx, &jobs.Error{Code: "lm_error", Message: "cut off"}, 0); err != nil {
		t.Fatal(err)
	}
	a = start(t, b, j.ID)
	a.LMCalls = 2
	if err := a.Defer(ctx, &jobs.Error{Code: "rate_limited", Message: "wait"}, 0); err != nil {
		t.Fatal(err)
	}
	a = start(t, b, j.ID)
	r := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}, Provenance: jobs.Provenance{LMCalls: 1}}
	if _, err := a.Complete(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	got := get(t, b, j.ID)
	if p := got.Result.Provenance; p.LMCalls != 4 || p.Attempts != 2 {
		t.Fatalf("provenance = %+v, want 4 LM calls over 2 counted attempts", p)
	}
}

// TestCompleteRepeatedAfterAnOutage: a worker repeats Complete with the same
// result while Redis is unreachable (worker/persist.go); the repeat must
// not count the earlier attempts' LM calls twice.
func TestCompleteRepeatedAfterAnOutage(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	faulty := redis.NewClient(b.db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	var refuse atomic.Int32
	refuse.Store(1)
	faulty.AddHook(redistest.RefuseScripts{Match: func(_ []string, args []any) bool {
		return len(args) > 0 && args[0] == "complete" && refuse.Add(-1) >= 0
	}})
	jobStore, err := store.NewJobs(faulty, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	j := submit(t, b, ask("", "q"))
	a, _, err := jobStore.Start(ctx, j.ID, "w", 0)
	if err != nil {
		t.Fatal(err)
	}
	a.LMCalls = 1
	if err := a.Retry(ctx, &jobs.Error{Code: "lm_error", Message: "cut off"}, 0); err != nil {
		t.Fatal(err)
	}
	a, _, err = jobStore.Start(ctx, j.ID, "w", 0)
	if err != nil || a.Number != 2 {
		t.Fatalf("second start: %+v %v", a, err)
	}
	r := &jobs.Result{Outputs: jobs.Outputs{{Name: "answer", Value: "a"}}, Provenance: jobs.Provenance{LMCalls: 1}}
	if _, err := a.Complete(ctx, r, 0); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("complete during the outage: %v, want connection refused", err)
	}
	if _, err := a.Complete(ctx, r, 0); err != nil {
		t.Fatalf("complete once Redis is back: %v", err)
	}
	got := get(t, b, j.ID)
	if p := got.Result.Provenance; p.LMCalls != 2 || p.Attempts != 2 {
		t.Fatalf("provenance = %+v, want 2 LM calls over 2 attempts", p)
	}
}
