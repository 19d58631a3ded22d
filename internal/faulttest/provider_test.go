package faulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// providerEnv makes the offload runner poll often and cut a batch into
// several provider files, so a run has more than one provider batch.
var providerEnv = []string{
	"PROVIDER_POLL_INTERVAL=200ms", "PROVIDER_POLL_MAX=1s", "BATCH_CONCURRENCY=20",
}

// batchView is what the test reads of a batch.
type batchView struct {
	ID            string                 `json:"id"`
	Status        string                 `json:"status"`
	Mode          string                 `json:"mode"`
	RequestCounts jobs.BatchCounts       `json:"request_counts"`
	Provider      *jobs.ProviderProgress `json:"provider"`
	Cost          *jobs.BatchCost        `json:"cost"`
}

// TestProviderBatch is the end-to-end case: a 10,000-item batch
// offloaded to the fake provider's Files and Batches API, while the worker
// creating the first provider batch is killed between the provider's
// answer and its record, and Redis restarts while the provider works.
// The worker that took the run over is killed while it polls. Every item
// is answered once, by the provider, with the live path's
// answer; the cost is half the live price; and each chunk made one
// provider batch (the second worker adopted the first's).
func TestProviderBatch(t *testing.T) {
	t.Parallel()
	const n, chunk = 10000, 4000
	db := redistest.NewServer(t, "--appendonly", "yes", "--appendfsync", "always")
	var victim atomic.Pointer[benchkit.Proc]
	var once sync.Once
	killed := make(chan struct{})
	lmcfg := fakelm.Config{Batch: fakelm.BatchConfig{
		// The provider works until the test moves its clock: the Redis
		// restart happens while every provider batch is in progress.
		InProgress: time.Hour,
		OnCreate: func(string, map[string]string) {
			once.Do(func() {
				if p := victim.Load(); p != nil {
					p.Kill() // between "created" at the provider and "recorded" here
				}
				close(killed)
			})
		},
	}}
	b := setup(t, db, lmcfg, append(providerEnv, fmt.Sprintf("PROVIDER_MAX_REQUESTS=%d", chunk))...)
	ctx := ctxFor(t, 8*time.Minute)

	question := func(i int) string { return fmt.Sprintf("provider question %d", i) }
	body := func(i int) string { return fmt.Sprintf(`{"custom_id":"q%d","question":%q}`, i, question(i)) }

	// The live path's answers, for the same questions, not cached (so the
	// provider batch is not answered by the cache).
	start := time.Now()
	first := b.startWorker(t)
	live := submitBatch(t, b, "?no_cache=true", n, body)
	waitBatch(t, b, ctx, live, func(v batchView) bool { return v.Status == "completed" })
	want := batchResults(t, b, ctx, live)
	if len(want) != n {
		t.Fatalf("live batch: %d results, want %d", len(want), n)
	}
	stopProc(t, first)
	liveCalls := b.lm.Calls()
	t.Logf("the live batch of %d items took %v", n, time.Since(start).Round(time.Millisecond))

	victim.Store(b.startWorker(t))
	id := submitBatch(t, b, "?mode=provider", n, body)
	select {
	case <-killed:
	case <-ctx.Done():
		t.Fatal("no provider batch was created")
	}
	killedAt := time.Now()
	second := b.startWorker(t)
	chunks := (n + chunk - 1) / chunk
	testwait.Within(t, 4*time.Minute, "every chunk's provider batch to exist", func() bool {
		return b.lm.Server.BatchesCreated() >= chunks
	})
	waitBatch(t, b, ctx, id, func(v batchView) bool {
		return v.Provider != nil && v.Provider.Phase == jobs.ProviderInProgress && len(v.Provider.Batches) == chunks
	})

	t.Logf("every chunk at the provider %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	if err := db.Server.Restart(); err != nil {
		t.Fatal(err)
	}
	// Killed mid-poll: the runner's state is in Redis, so a third worker
	// takes the polling on.
	second.Kill()
	b.startWorker(t)
	b.lm.Server.Advance(time.Hour)
	restarted := time.Now()
	v := waitBatch(t, b, ctx, id, func(v batchView) bool {
		return v.Status == "completed" && v.Provider != nil && v.Provider.Phase == jobs.ProviderDone
	})

	t.Logf("the provider's answers recorded %v after the Redis restart", time.Since(restarted).Round(time.Millisecond))
	if got := b.lm.Server.BatchesCreated(); got != chunks {
		t.Errorf("%d provider batches created for %d chunks: the kill doubled one", got, chunks)
	}
	if c := v.RequestCounts; c.Total != n || c.Completed != n {
		t.Errorf("counts %+v, want %d completed", c, n)
	}
	if calls := b.lm.Calls() - liveCalls; calls != 0 {
		t.Errorf("%d live LM calls during the provider batch, want 0", calls)
	}
	got := batchResults(t, b, ctx, id)
	if len(got) != n {
		t.Errorf("%d results, want %d", len(got), n)
	}
	for cid, r := range got {
		if r.Provenance == nil || r.Provenance.Path != jobs.PathProvider {
			t.Errorf("%s: answered by %+v, want the provider", cid, r.Provenance)
			break
		}
		if w, ok := want[cid]; !ok || string(mustMarshal(t, w.Outputs)) != string(mustMarshal(t, r.Outputs)) {
			t.Errorf("%s: provider outputs %s, live %s", cid, mustMarshal(t, r.Outputs), mustMarshal(t, w.Outputs))
			break
		}
	}
	if v.Cost == nil || v.Cost.Micros == nil || v.Cost.LiveMicros == nil {
		t.Fatalf("cost %+v: want both prices", v.Cost)
	}
	t.Logf("cost: %d µ$ at the batch price, %d µ$ live, %d provider calls", *v.Cost.Micros, *v.Cost.LiveMicros, v.Cost.ProviderCalls)
	// Each call is rounded once at each price: half the live price, give or
	// take a micro-dollar a call.
	if d := 2**v.Cost.Micros - *v.Cost.LiveMicros; d > int64(n) || d < -int64(n) || v.Cost.ProviderCalls != n {
		t.Errorf("cost %d µ$ is not half of %d µ$ live over %d calls", *v.Cost.Micros, *v.Cost.LiveMicros, v.Cost.ProviderCalls)
	}
}

// submitBatch uploads n lines made by line as a batch with query, and
// returns its id.
func submitBatch(t *testing.T, b *bundle, query string, n int, line func(int) string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxFor(t, 5*time.Minute), http.MethodPost, b.c.Base+"/v1/batches"+query, genBody(n, line))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := b.c.HTTP.Do(req)
	if err != nil {
		t.Fatalf("upload%s: %v", query, err)
	}
	defer resp.Body.Close()
	var v batchView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusAccepted || v.ID == "" {
		t.Fatalf("upload%s: %d, %v", query, resp.StatusCode, err)
	}
	return v.ID
}

// waitBatch polls the batch until done holds, and returns what it read.
func waitBatch(t *testing.T, b *bundle, ctx context.Context, id string, done func(batchView) bool) batchView {
	t.Helper()
	var v batchView
	testwait.Within(t, 5*time.Minute, "batch "+id+" to move on", func() bool {
		v = batchView{}
		err := b.c.Do(ctx, http.MethodGet, "/v1/batches/"+id, nil, http.StatusOK, &v)
		return err == nil && done(v)
	})
	return v
}

// batchResults reads the batch's result lines by custom_id, failing on a
// custom_id seen twice.
func batchResults(t *testing.T, b *bundle, ctx context.Context, id string) map[string]jobs.ItemResult {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.c.Base+"/v1/batches/"+id+"/results", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]jobs.ItemResult{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r jobs.ItemResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("result line %q: %v", sc.Text(), err)
		}
		if _, dup := out[r.CustomID]; dup {
			t.Errorf("%s answered twice", r.CustomID)
		}
		out[r.CustomID] = r
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
