package offload_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/offload"
	"github.com/qaqueue/qaqueue/pricing"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
)

// expand hands batch bt to its runner, as the batch's expansion does.
func (b *bundle) expand(t *testing.T, bt *jobs.Batch) {
	t.Helper()
	if _, err := b.bs.Expand(context.Background(), bt.ID, 0); err != nil {
		t.Fatal(err)
	}
}

// usageOf decodes a usage block.
func usageOf(t *testing.T, raw json.RawMessage) map[string]program.Usage {
	t.Helper()
	var u map[string]program.Usage
	if err := json.Unmarshal(raw, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSingleStage: every item of a one-stage batch is answered once by the
// provider, its result the live path's for the same completion, the cost
// at the batch price, one provider batch, and no provider file left.
func TestSingleStage(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{})
	qs := []string{"Why is the sky blue?", "What is a prime number?", "Who wrote Hamlet?"}
	bt := b.qaBatch(t, qs...)
	b.expand(t, bt)
	b.runToEnd(t, bt.ID)

	end := b.get(t, bt.ID)
	if end.Status != jobs.BatchCompleted || end.Counts.Completed != len(qs) {
		t.Fatalf("batch %s %+v, want completed with %d", end.Status, end.Counts, len(qs))
	}
	var want, inputTokens int64
	for i, r := range b.results(t, end) {
		if r.Status != jobs.StatusCompleted || r.Provenance == nil || r.Provenance.Path != jobs.PathProvider || r.Attempts != 1 {
			t.Fatalf("item %d: %+v", i, r)
		}
		// Each item's line carries its own cost, at the batch price.
		if c := b.prices.CostOfModels(usageOf(t, r.Usage), true); r.Cost == nil || *r.Cost != *c {
			t.Errorf("item %d's cost %v, want %d (its usage at the batch price)", i, r.Cost, *c)
		}
		inputTokens += pricing.Tokens(usageOf(t, r.Usage)).Input
		live := b.live(t, end.Spec, jobs.Inputs{"question": qs[i]})
		if diff := cmp.Diff(live.Outputs, r.Outputs); diff != "" {
			t.Errorf("item %d's outputs differ from the live path's (-live +provider):\n%s", i, diff)
		}
		if diff := cmp.Diff(usageOf(t, live.Usage), usageOf(t, r.Usage)); diff != "" {
			t.Errorf("item %d's usage differs from the live path's (-live +provider):\n%s", i, diff)
		}
		for model, u := range usageOf(t, r.Usage) {
			c, ok := b.prices.Cost(model, u, true)
			if !ok {
				t.Fatalf("no price for %s", model)
			}
			want += c
		}
	}
	if end.Cost == nil || end.Cost.Micros == nil || *end.Cost.Micros != want || end.Cost.ProviderCalls != len(qs) || end.Cost.LiveCalls != 0 {
		t.Errorf("cost %+v, want %d micro-dollars at the batch price over %d provider calls", end.Cost, want, len(qs))
	}
	if end.Cost != nil && end.Cost.LiveMicros != nil && *end.Cost.LiveMicros <= want {
		t.Errorf("live price %d is not above the batch price %d", *end.Cost.LiveMicros, want)
	}
	if end.Provider == nil || end.Provider.Phase != jobs.ProviderDone {
		t.Errorf("provider object %+v, want phase done", end.Provider)
	}
	// The usage accounting and metrics count each item once, at its cost.
	now := time.Now()
	rows, err := store.ReadUsage(context.Background(), b.db.Client, now.Add(-time.Hour), now.Add(time.Hour), "")
	if err != nil || len(rows) != 1 || rows[0].Jobs != int64(len(qs)) || rows[0].CostMicroUSD != want || rows[0].InputTokens != inputTokens {
		t.Errorf("usage accounting %+v, %v; want %d jobs, %d micro-dollars, %d input tokens", rows, err, len(qs), want, inputTokens)
	}
	if n := b.metric(t, "qa_jobs_completed_total", ""); n != float64(len(qs)) {
		t.Errorf("qa_jobs_completed_total %v, want %d", n, len(qs))
	}
	if n := b.srv.BatchesCreated(); n != 1 {
		t.Errorf("%d provider batches created, want 1", n)
	}
	if r, p, polls := b.metric(t, "qa_offload_rounds_total", ""), b.metric(t, "qa_offload_requests_total", "provider"),
		b.metric(t, "qa_offload_polls_total", "finished"); r != 1 || p != float64(len(qs)) || polls < 1 {
		t.Errorf("metrics: %v rounds, %v provider answers, %v finished polls; want 1, %d, at least 1", r, p, polls, len(qs))
	}
	if f, err := b.api.FindFile(context.Background(), "qaqueue-"+bt.ID+"-r1-s0-c0.jsonl"); err != nil || f != nil {
		t.Errorf("the round's input file is still at the provider: %+v, %v", f, err)
	}
}

// TestParseFailureGoesLive: an item whose provider (chat) answer does not
// parse is answered by DSPy's JSON fallback live, at once.
func TestParseFailureGoesLive(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{})
	bt := b.qaBatch(t, "Tell me about owls [[fakelm:garbage,times=1]]", "Tell me about cats")
	b.expand(t, bt)
	b.runToEnd(t, bt.ID)
	end := b.get(t, bt.ID)
	rs := b.results(t, end)
	if end.Status != jobs.BatchCompleted || rs[0].Status != jobs.StatusCompleted {
		t.Fatalf("batch %s, item 0 %+v", end.Status, rs[0])
	}
	if rs[0].Provenance.Path != jobs.PathLive || rs[0].Provenance.LMCalls < 2 {
		t.Errorf("item 0's provenance %+v, want answered live after the provider's answer", rs[0].Provenance)
	}
	if rs[1].Provenance.Path != jobs.PathProvider {
		t.Errorf("item 1's path %q, want provider", rs[1].Provenance.Path)
	}
	if end.Cost == nil || end.Cost.LiveCalls < 1 || end.Cost.ProviderCalls != 2 {
		t.Errorf("cost %+v, want 2 provider calls and a live one", end.Cost)
	}
	if n := b.srv.BatchesCreated(); n != 1 {
		t.Errorf("%d provider batches created, want 1", n)
	}
}

// TestParseFailureGoesToAnotherRound: with PROVIDER_FALLBACK=provider the
// JSON fallback is a further provider round, and the item's answer is the
// provider's.
func TestParseFailureGoesToAnotherRound(t *testing.T) {
	b := setup(t, offload.Config{Fallback: offload.FallbackProvider}, fakelm.BatchConfig{})
	bt := b.qaBatch(t, "Tell me about owls [[fakelm:garbage,times=1]]", "Tell me about cats")
	b.expand(t, bt)
	b.runToEnd(t, bt.ID)
	end := b.get(t, bt.ID)
	rs := b.results(t, end)
	if end.Status != jobs.BatchCompleted || rs[0].Status != jobs.StatusCompleted || rs[0].Provenance.Path != jobs.PathProvider {
		t.Fatalf("batch %s, item 0 %+v", end.Status, rs[0])
	}
	st, _, err := b.bs.Offload(context.Background(), bt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Round < 2 || b.srv.BatchesCreated() != st.Round {
		t.Errorf("ended in round %d with %d provider batches, want a round (and a batch) per fallback", st.Round, b.srv.BatchesCreated())
	}
	// Item 1 is answered in round 1; item 0 is sent in every round.
	if end.Cost == nil || end.Cost.LiveCalls != 0 || end.Cost.ProviderCalls != 1+st.Round {
		t.Errorf("cost %+v, want %d provider calls (one a round for item 0, one for item 1) and no live call", end.Cost, 1+st.Round)
	}
}

// TestCachedItemNeverSent: an item the LM cache answers is recorded from
// it and never sent to the provider.
func TestCachedItemNeverSent(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{})
	if _, err := program.NewQA().Run(context.Background(), b.lc, map[string]any{"question": "Why is the sky blue?"}, nil); err != nil {
		t.Fatal(err)
	}
	bt := b.qaBatch(t, "Why is the sky blue?", "Who wrote Hamlet?")
	b.expand(t, bt)
	var sent int
	b.runUntil(t, bt.ID, func(st batches.OffloadState, chunks []batches.OffloadChunk) bool {
		for _, c := range chunks {
			sent = max(sent, c.Requests)
		}
		return st.Done
	})
	end := b.get(t, bt.ID)
	rs := b.results(t, end)
	if rs[0].Provenance == nil || rs[0].Provenance.Path != jobs.PathCache || !rs[0].CacheHit {
		t.Errorf("item 0 %+v, want answered from the cache", rs[0])
	}
	if rs[1].Provenance == nil || rs[1].Provenance.Path != jobs.PathProvider {
		t.Errorf("item 1 %+v, want answered by the provider", rs[1])
	}
	if sent != 1 || end.Provider == nil || end.Provider.Counts.Cached != 1 {
		t.Errorf("%d requests sent, provider %+v; want 1 sent and 1 cached", sent, end.Provider)
	}
}

// TestFailedLines: a line the provider failed for good fails its item with
// the reason; one it failed for now goes live.
func TestFailedLines(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{})
	b.startWorker(t, false) // runs the items handed to the live path
	bt := b.qaBatch(t, "Bad [[fakelm:400]]", "Busy [[fakelm:500,times=1]]", "Fine")
	b.expand(t, bt)
	b.runToEnd(t, bt.ID)
	end := b.waitEnded(t, bt.ID)
	rs := b.results(t, end)
	if rs[0].Status != jobs.StatusFailed || rs[0].Error == nil || rs[0].Error.Code != "lm_error" || rs[0].Error.Status != 400 {
		t.Errorf("item 0 %+v, want failed with the provider's 400", rs[0])
	}
	if rs[1].Status != jobs.StatusCompleted || rs[1].Provenance.Path != jobs.PathLive {
		t.Errorf("item 1 %+v, want completed live", rs[1])
	}
	if rs[2].Status != jobs.StatusCompleted || rs[2].Provenance.Path != jobs.PathProvider {
		t.Errorf("item 2 %+v, want completed by the provider", rs[2])
	}
	if end.Counts.Completed != 2 || end.Counts.Failed != 1 {
		t.Errorf("counts %+v", end.Counts)
	}
}

// TestCancelMidRound: a batch cancelled while its provider batch runs
// cancels it; what the provider answered is recorded (it is billed), the
// rest counted cancelled.
func TestCancelMidRound(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{StallAfter: 1})
	bt := b.qaBatch(t, "First question", "Second question", "Third question")
	b.expand(t, bt)
	b.runUntil(t, bt.ID, func(st batches.OffloadState, chunks []batches.OffloadChunk) bool {
		return len(chunks) == 1 && chunks[0].Status == "in_progress"
	})
	if _, err := b.bs.Cancel(context.Background(), bt.ID); err != nil {
		t.Fatal(err)
	}
	var pb string
	b.runUntil(t, bt.ID, func(st batches.OffloadState, chunks []batches.OffloadChunk) bool {
		if len(chunks) == 1 {
			pb = chunks[0].BatchID
		}
		return st.Done
	})
	got, err := b.api.GetBatch(context.Background(), pb)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "cancelled" {
		t.Errorf("provider batch %s, want cancelled", got.Status)
	}
	end := b.get(t, bt.ID)
	if end.Status != jobs.BatchCancelled || end.Counts.Completed != 1 || end.Counts.Cancelled != 2 {
		t.Fatalf("batch %s %+v, want cancelled with the provider's one answer kept", end.Status, end.Counts)
	}
	if rs := b.results(t, end); rs[0].Status != jobs.StatusCompleted || rs[0].Provenance.Path != jobs.PathProvider {
		t.Errorf("item 0 %+v, want the provider's answer", rs[0])
	}
	if first, second := b.cached(t, "First question"), b.cached(t, "Second question"); !first || second {
		t.Errorf("the LM cache holds the first answer: %v, the second: %v; want the provider's one answer, and only it", first, second)
	}
}

// TestExpiredProviderBatch: a provider batch that expires keeps what it
// answered; with PROVIDER_UNFINISHED=fail the rest fail, with live they go
// to the live path.
func TestExpiredProviderBatch(t *testing.T) {
	for _, unfinished := range []string{offload.UnfinishedFail, offload.UnfinishedLive} {
		t.Run(unfinished, func(t *testing.T) {
			b := setup(t, offload.Config{Unfinished: unfinished}, fakelm.BatchConfig{StallAfter: 1, Window: time.Hour})
			bt := b.qaBatch(t, "First question", "Second question", "Third question")
			b.expand(t, bt)
			b.runUntil(t, bt.ID, func(st batches.OffloadState, chunks []batches.OffloadChunk) bool {
				return len(chunks) == 1 && chunks[0].Status == "in_progress"
			})
			b.srv.Advance(2 * time.Hour)
			b.runToEnd(t, bt.ID)
			bt = b.get(t, bt.ID)
			rs := b.results(t, bt)
			if rs[0].Status != jobs.StatusCompleted || rs[0].Provenance.Path != jobs.PathProvider {
				t.Fatalf("item 0 %+v, want the provider's answer kept", rs[0])
			}
			if unfinished == offload.UnfinishedFail {
				for _, r := range rs[1:] {
					if r.Status != jobs.StatusFailed || r.Error == nil || r.Error.Code != "provider_unfinished" {
						t.Errorf("item %+v, want failed unfinished", r)
					}
				}
				if bt.Status != jobs.BatchCompleted {
					t.Errorf("batch %s, want completed", bt.Status)
				}
				return
			}
			info, err := asynq.NewInspectorFromRedisClient(b.db.Client).GetQueueInfo(jobs.QueueBatch)
			if err != nil {
				t.Fatal(err)
			}
			if info.Pending != 2 {
				t.Errorf("%d item tasks on the live path, want the 2 unanswered", info.Pending)
			}
			b.startWorker(t, false)
			end := b.waitEnded(t, bt.ID)
			if end.Status != jobs.BatchCompleted || end.Counts.Completed != 3 {
				t.Fatalf("batch %s %+v, want every item completed", end.Status, end.Counts)
			}
			for i, r := range b.results(t, end)[1:] {
				if r.Provenance.Path != jobs.PathLive {
					t.Errorf("item %d's path %q, want live", i+1, r.Provenance.Path)
				}
			}
		})
	}
}

// TestTwoStage: a two-stage program runs stage by stage, one provider
// round each, and its results are the live path's.
func TestTwoStage(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{})
	spec := jobs.Spec{ClientSpec: jobs.ClientSpec{Program: "claims"}, ServerSpec: jobs.ServerSpec{Owner: "alice", ProgramVersion: claimsVersion}}
	in := []jobs.Inputs{
		{"text": "The sky is blue and grass is green.", "quote": "Grass is green."},
		{"text": "Water boils at 100 C at sea level.", "quote": "It boils at 90 C."},
	}
	bt := b.batchOf(t, spec, in...)
	b.expand(t, bt)
	stages := map[int]bool{}
	b.runUntil(t, bt.ID, func(st batches.OffloadState, chunks []batches.OffloadChunk) bool {
		if len(chunks) > 0 {
			stages[st.Stage] = true
		}
		return st.Done
	})
	if !stages[0] || !stages[1] || b.srv.BatchesCreated() != 2 {
		t.Errorf("rounds of stages %v, %d provider batches; want one round (and batch) per stage", stages, b.srv.BatchesCreated())
	}
	end := b.get(t, bt.ID)
	if end.Status != jobs.BatchCompleted || end.Counts.Completed != 2 {
		t.Fatalf("batch %s %+v", end.Status, end.Counts)
	}
	for i, r := range b.results(t, end) {
		live := b.live(t, spec, in[i])
		if diff := cmp.Diff(live.Outputs, r.Outputs); diff != "" {
			t.Errorf("item %d's outputs differ from the live path's (-live +provider):\n%s", i, diff)
		}
		if diff := cmp.Diff(usageOf(t, live.Usage), usageOf(t, r.Usage)); diff != "" {
			t.Errorf("item %d's usage differs from the live path's (-live +provider):\n%s", i, diff)
		}
		if r.Provenance.Path != jobs.PathProvider || r.Provenance.LMCalls != 2 {
			t.Errorf("item %d's provenance %+v", i, r.Provenance)
		}
		// Its cost is its two stages' at the batch price, each rounded
		// once: within a micro-dollar of its total usage's.
		if c := b.prices.CostOfModels(usageOf(t, r.Usage), true); r.Cost == nil || *r.Cost < *c-1 || *r.Cost > *c+1 || *r.Cost == 0 {
			t.Errorf("item %d's cost %v, want about %d (its usage at the batch price)", i, r.Cost, *c)
		}
	}
}

// TestAdoptAfterKill: a runner stopped between the provider creating its
// batch and the runner recording it leaves the state "creating" with no
// batch id; the next run adopts the provider's batch (found by its
// metadata) instead of creating a second, billed one.
func TestAdoptAfterKill(t *testing.T) {
	ctx, kill := context.WithCancel(context.Background())
	killed := false
	b := setup(t, offload.Config{}, fakelm.BatchConfig{OnCreate: func(string, map[string]string) {
		if !killed {
			killed = true
			kill()
		}
	}})
	bt := b.qaBatch(t, "Why is the sky blue?", "Who wrote Hamlet?")
	b.expand(t, bt)
	if _, err := b.r.Run(ctx, bt.ID); err == nil {
		t.Fatal("the killed run reported no error")
	}
	_, chunks, err := b.bs.Offload(context.Background(), bt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 1 || !chunks[0].Creating || chunks[0].BatchID != "" {
		t.Fatalf("state after the kill %+v, want creating without a batch id", chunks)
	}
	b.runToEnd(t, bt.ID)
	if n := b.srv.BatchesCreated(); n != 1 {
		t.Errorf("%d provider batches created, want 1 (adopted)", n)
	}
	if end := b.get(t, bt.ID); end.Status != jobs.BatchCompleted || end.Counts.Completed != 2 {
		t.Errorf("batch %s %+v", end.Status, end.Counts)
	}
}

// TestWorkerRunsTheOffloadTask: a worker with the runner serves the
// batch's offload task on its queue, looks again after each wait, and the
// batch completes.
func TestWorkerRunsTheOffloadTask(t *testing.T) {
	b := setup(t, offload.Config{PollInterval: time.Millisecond, PollMax: time.Millisecond}, fakelm.BatchConfig{})
	b.startWorker(t, true)
	bt := b.qaBatch(t, "Why is the sky blue?", "Who wrote Hamlet?")
	b.expand(t, bt)
	end := b.waitEnded(t, bt.ID)
	if end.Status != jobs.BatchCompleted || end.Counts.Completed != 2 {
		t.Fatalf("batch %s %+v", end.Status, end.Counts)
	}
	for i, r := range b.results(t, end) {
		if r.Provenance == nil || r.Provenance.Path != jobs.PathProvider {
			t.Errorf("item %d %+v, want answered by the provider", i, r)
		}
	}
}

// TestCancelWakesTheWaitingTask: a cancel reaches a runner waiting to look
// at its provider batch again at once, not after PROVIDER_POLL_MAX.
func TestCancelWakesTheWaitingTask(t *testing.T) {
	b := setup(t, offload.Config{PollInterval: time.Hour, PollMax: time.Hour}, fakelm.BatchConfig{StallAfter: 1})
	b.startWorker(t, true)
	bt := b.qaBatch(t, "First question", "Second question")
	b.expand(t, bt)
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, chunks, err := b.bs.Offload(context.Background(), bt.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Polls > 0 && len(chunks) == 1 && chunks[0].BatchID != "" {
			break // waiting an hour for its next look
		}
		if time.Now().After(deadline) {
			t.Fatal("the runner never created its provider batch")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := b.bs.Cancel(context.Background(), bt.ID); err != nil {
		t.Fatal(err)
	}
	if end := b.waitEnded(t, bt.ID); end.Status != jobs.BatchCancelled {
		t.Errorf("batch %s %+v, want cancelled", end.Status, end.Counts)
	}
}

// TestBudgetSpentBeforeARound: a round does not start once its owner's
// daily token budget is spent; its items fail saying so, and nothing goes
// to the provider.
func TestBudgetSpentBeforeARound(t *testing.T) {
	b := setupStore(t, offload.Config{}, fakelm.BatchConfig{}, store.Config{TokenBudgetPerDay: 100})
	bt := b.qaBatch(t, "Why is the sky blue?", "Who wrote Hamlet?")
	b.expand(t, bt)
	if err := b.db.Client.IncrBy(context.Background(), jobs.UsageKey("alice", jobs.UsageDay(time.Now())), 100).Err(); err != nil {
		t.Fatal(err)
	}
	b.runToEnd(t, bt.ID)
	end := b.get(t, bt.ID)
	if end.Status != jobs.BatchCompleted || end.Counts.Failed != 2 {
		t.Fatalf("batch %s %+v, want both items failed", end.Status, end.Counts)
	}
	for i, r := range b.results(t, end) {
		if r.Error == nil || r.Error.Code != jobs.ErrCodeBudget {
			t.Errorf("item %d %+v, want failed for the budget", i, r)
		}
	}
	if n := b.srv.BatchesCreated(); n != 0 {
		t.Errorf("%d provider batches created, want none", n)
	}
}

// TestTokenLimitWaits: a chunk the provider refuses for its enqueued-token
// limit waits and is sent again once the chunks before it are done; no
// item fails for it.
func TestTokenLimitWaits(t *testing.T) {
	b := setup(t, offload.Config{MaxRequests: 1}, fakelm.BatchConfig{TokenLimit: 400})
	bt := b.qaBatch(t, "Why is the sky blue?", "Who wrote Hamlet?")
	b.expand(t, bt)
	b.runToEnd(t, bt.ID)
	end := b.get(t, bt.ID)
	if end.Status != jobs.BatchCompleted || end.Counts.Completed != 2 {
		t.Fatalf("batch %s %+v, want both items completed", end.Status, end.Counts)
	}
	for i, r := range b.results(t, end) {
		if r.Provenance.Path != jobs.PathProvider {
			t.Errorf("item %d's path %q, want provider", i, r.Provenance.Path)
		}
	}
	if n := b.srv.BatchesCreated(); n < 3 {
		t.Errorf("%d provider batches created, want a refused one sent again (3 or more)", n)
	}
}

// TestChunksWithinLimits: a round is cut into chunks within
// PROVIDER_MAX_REQUESTS and PROVIDER_MAX_BYTES, and each chunk's upload
// (rendered again from its index range) is the bytes its plan counted.
func TestChunksWithinLimits(t *testing.T) {
	qs := []string{"One?", "Two?", "Three?", "Four?", "Five?"}
	for _, tc := range []struct {
		name string
		cfg  offload.Config
		want [][2]int
	}{
		{"requests", offload.Config{MaxRequests: 2}, [][2]int{{0, 2}, {2, 4}, {4, 5}}},
		// A line of these is about 1,170 bytes: 3,000 hold two, not three.
		{"bytes", offload.Config{MaxBytes: 3000}, [][2]int{{0, 2}, {2, 4}, {4, 5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t, tc.cfg, fakelm.BatchConfig{})
			bt := b.qaBatch(t, qs...)
			b.expand(t, bt)
			var chunks []batches.OffloadChunk
			b.runUntil(t, bt.ID, func(_ batches.OffloadState, cs []batches.OffloadChunk) bool {
				chunks = cs
				for _, c := range cs {
					if c.BatchID == "" {
						return false
					}
				}
				return len(cs) > 0
			})
			var got [][2]int
			for k, c := range chunks {
				got = append(got, [2]int{c.From, c.To})
				if c.Requests > b.r.Config().MaxRequests || c.Bytes > b.r.Config().MaxBytes {
					t.Errorf("chunk %d holds %d requests, %d bytes: over the limits", k, c.Requests, c.Bytes)
				}
				f, err := b.api.FindFile(context.Background(), fmt.Sprintf("qaqueue-%s-r1-s0-c%d.jsonl", bt.ID, k))
				if err != nil || f == nil {
					t.Fatalf("chunk %d's file: %+v, %v", k, f, err)
				}
				if f.Bytes != c.Bytes {
					t.Errorf("chunk %d uploaded %d bytes, its plan counted %d", k, f.Bytes, c.Bytes)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("chunks (-want +got):\n%s", diff)
			}
			b.runToEnd(t, bt.ID)
			if end := b.get(t, bt.ID); end.Status != jobs.BatchCompleted || end.Counts.Completed != len(qs) {
				t.Errorf("batch %s %+v", end.Status, end.Counts)
			}
		})
	}
}

// TestMalformedLines: an output line the provider garbled leaves its item
// unanswered (to the live path), not failed.
func TestMalformedLines(t *testing.T) {
	b := setup(t, offload.Config{Unfinished: offload.UnfinishedFail}, fakelm.BatchConfig{MalformedEvery: 2})
	bt := b.qaBatch(t, "One?", "Two?", "Three?")
	b.expand(t, bt)
	b.runToEnd(t, bt.ID)
	rs := b.results(t, b.get(t, bt.ID))
	if rs[0].Status != jobs.StatusCompleted || rs[2].Status != jobs.StatusCompleted {
		t.Errorf("items 0 and 2: %+v, %+v, want completed", rs[0], rs[2])
	}
	if rs[1].Status != jobs.StatusFailed || rs[1].Error == nil || rs[1].Error.Code != "provider_unfinished" {
		t.Errorf("item 1 %+v, want unanswered (failed so with PROVIDER_UNFINISHED=fail)", rs[1])
	}
}

// TestProgramVersionGone: a batch whose program version was pruned while
// it waited fails its items saying so, rather than retrying forever.
func TestProgramVersionGone(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{})
	spec := jobs.Spec{ClientSpec: jobs.ClientSpec{Program: "claims"}, ServerSpec: jobs.ServerSpec{Owner: "alice", ProgramVersion: "pruned"}}
	bt := b.batchOf(t, spec, jobs.Inputs{"text": "t", "quote": "q"}, jobs.Inputs{"text": "u", "quote": "r"})
	b.expand(t, bt)
	b.runToEnd(t, bt.ID)
	end := b.get(t, bt.ID)
	if end.Status != jobs.BatchCompleted || end.Counts.Failed != 2 {
		t.Fatalf("batch %s %+v, want both items failed", end.Status, end.Counts)
	}
	for i, r := range b.results(t, end) {
		if r.Error == nil || r.Error.Code != jobs.CodeProgramVersionGone {
			t.Errorf("item %d %+v", i, r)
		}
	}
}

// killingUploads is the real batch API whose first upload is followed by
// a kill: the file is stored at the provider, its runner never records it.
type killingUploads struct {
	*lmclient.BatchAPI
	kill    context.CancelFunc
	uploads int
}

func (k *killingUploads) UploadFile(ctx context.Context, name string, body io.Reader) (*lmclient.ProviderFile, error) {
	f, err := k.BatchAPI.UploadFile(ctx, name, body)
	k.uploads++
	if k.uploads == 1 {
		k.kill()
		return nil, context.Canceled
	}
	return f, err
}

// TestAdoptFileAfterKill: a runner stopped between the provider storing
// its file and the runner recording it uploads nothing again: the next run
// adopts the file by its name.
func TestAdoptFileAfterKill(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{})
	ctx, kill := context.WithCancel(context.Background())
	api := &killingUploads{BatchAPI: b.api, kill: kill}
	r, err := offload.New(offload.Config{}, offload.Deps{Batches: b.bs, Programs: b.programs, LM: b.lc, Provider: api, Prices: b.prices, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	b.r = r
	bt := b.qaBatch(t, "Why is the sky blue?", "Who wrote Hamlet?")
	b.expand(t, bt)
	if _, err := r.Run(ctx, bt.ID); err == nil {
		t.Fatal("the killed run reported no error")
	}
	if _, chunks, err := b.bs.Offload(context.Background(), bt.ID); err != nil || len(chunks) != 1 || chunks[0].FileID != "" {
		t.Fatalf("state after the kill %+v, %v; want one chunk without a file id", chunks, err)
	}
	b.runToEnd(t, bt.ID)
	if api.uploads != 1 {
		t.Errorf("%d uploads, want 1 (the file adopted)", api.uploads)
	}
	if end := b.get(t, bt.ID); end.Status != jobs.BatchCompleted || end.Counts.Completed != 2 {
		t.Errorf("batch %s %+v", end.Status, end.Counts)
	}
}

// TestProviderOutageWaits: a provider that answers 503 for a while delays
// the round (a wait, not an error that spends the task's retries), and the
// provider object says why meanwhile.
func TestProviderOutageWaits(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{OutageRequests: 3})
	bt := b.qaBatch(t, "Why is the sky blue?")
	b.expand(t, bt)
	wait, err := b.r.Run(context.Background(), bt.ID)
	if err != nil || wait <= 0 {
		t.Fatalf("run in the outage = %v, %v; want a wait", wait, err)
	}
	if p := b.get(t, bt.ID).Provider; p == nil || p.Error == nil || p.Error.Code != "provider_unavailable" {
		t.Errorf("provider object in the outage %+v, want its error", p)
	}
	b.runToEnd(t, bt.ID)
	if end := b.get(t, bt.ID); end.Status != jobs.BatchCompleted || end.Counts.Completed != 1 {
		t.Errorf("batch %s %+v", end.Status, end.Counts)
	}
}

// TestUnparsableItemIsBilled: an item no attempt parses fails with the
// parse error, and what its calls cost (the provider's and the live
// fallbacks') is in the batch's cost all the same.
func TestUnparsableItemIsBilled(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{})
	bt := b.qaBatch(t, "Tell me about owls [[fakelm:garbage]]")
	b.expand(t, bt)
	b.runToEnd(t, bt.ID)
	end := b.get(t, bt.ID)
	if rs := b.results(t, end); rs[0].Status != jobs.StatusFailed || rs[0].Error == nil || rs[0].Error.Code != "parse_error" {
		t.Fatalf("item %+v, want failed with the parse error", rs[0])
	}
	if end.Cost == nil || end.Cost.ProviderCalls != 1 || end.Cost.LiveCalls != 2 || end.Cost.Micros == nil || *end.Cost.Micros == 0 {
		t.Errorf("cost %+v, want the provider call and the two live fallbacks billed", end.Cost)
	}
}
