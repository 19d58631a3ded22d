package offload_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/batches"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/offload"
	"github.com/qaqueue/qaqueue/program"
	"github.com/rs/zerolog"
)

// TestCancelAfterKillBetweenCreateAndRecord: a runner killed between
// creating a chunk's provider batch and recording it, its batch cancelled
// before the next run, still finds that provider batch: it is cancelled
// (not left running, billed, unseen) and what it answered is recorded.
func TestCancelAfterKillBetweenCreateAndRecord(t *testing.T) {
	ctx, kill := context.WithCancel(context.Background())
	created := make(chan string, 4)
	b := setup(t, offload.Config{}, fakelm.BatchConfig{StallAfter: 1, OnCreate: func(id string, _ map[string]string) {
		created <- id
		kill()
	}})
	bt := b.qaBatch(t, "Why is the sky blue?", "Who wrote Hamlet?")
	b.expand(t, bt)
	if _, err := b.r.Run(ctx, bt.ID); err == nil {
		t.Fatal("the killed run reported no error")
	}
	if _, err := b.bs.Cancel(context.Background(), bt.ID); err != nil {
		t.Fatal(err)
	}
	b.runToEnd(t, bt.ID)
	if n := b.srv.BatchesCreated(); n != 1 {
		t.Fatalf("%d provider batches created, want 1", n)
	}
	pb, err := b.api.GetBatch(context.Background(), <-created)
	if err != nil {
		t.Fatal(err)
	}
	if pb.Status != "cancelled" {
		t.Errorf("the unrecorded provider batch is %s, want cancelled", pb.Status)
	}
	end := b.waitEnded(t, bt.ID)
	if end.Status != jobs.BatchCancelled || end.Counts.Completed+end.Counts.Cancelled != 2 {
		t.Errorf("batch %s %+v", end.Status, end.Counts)
	}
}

// TestLinesNotOurs: a provider line whose custom_id names an item of the
// chunk, but is not one the runner sent (an attempt the program does not
// have, or an index spelled otherwise), records nothing: the item's own
// line answers it.
func TestLinesNotOurs(t *testing.T) {
	b := setup(t, offload.Config{LiveParallel: 1}, fakelm.BatchConfig{})
	qs := []string{"Why is the sky blue?", "Who wrote Hamlet?"}
	bt := b.qaBatch(t, qs...)
	b.expand(t, bt)
	b.runUntil(t, bt.ID, func(_ batches.OffloadState, chunks []batches.OffloadChunk) bool {
		return len(chunks) == 1 && chunks[0].BatchID != ""
	})
	// The chunk's provider batch is swapped for one on a file that has,
	// before the runner's own lines, item 0's request under ids not ours.
	ctx := context.Background()
	_, chunks, err := b.bs.Offload(ctx, bt.ID)
	if err != nil {
		t.Fatal(err)
	}
	ch := chunks[0]
	rc, err := b.api.OpenFile(ctx, ch.FileID)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(sent), []byte("\n"))
	var first map[string]any
	if err := json.Unmarshal(lines[0], &first); err != nil || first["custom_id"] != "qa-0-0" {
		t.Fatalf("first line %s: %v", lines[0], err)
	}
	var file bytes.Buffer
	for _, id := range []string{"qa-0-7", "qa-+1-0", "qa-01-0"} {
		first["custom_id"] = id
		line, err := json.Marshal(first)
		if err != nil {
			t.Fatal(err)
		}
		file.Write(append(line, '\n'))
	}
	file.Write(sent)
	f, err := b.api.UploadFile(ctx, "swapped.jsonl", &file)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.api.CreateBatch(ctx, f.ID, map[string]string{"test": "swapped"})
	if err != nil {
		t.Fatal(err)
	}
	ch.BatchID, ch.Status = pb.ID, pb.Status
	if err := b.bs.SetOffloadChunk(ctx, bt.ID, 1, 0, ch); err != nil {
		t.Fatal(err)
	}
	b.runToEnd(t, bt.ID)
	end := b.get(t, bt.ID)
	if end.Status != jobs.BatchCompleted || end.Counts.Completed != 2 {
		t.Fatalf("batch %s %+v, want both items completed", end.Status, end.Counts)
	}
	for i, r := range b.results(t, end) {
		live := b.live(t, end.Spec, jobs.Inputs{"question": qs[i]})
		if diff := cmp.Diff(live.Outputs, r.Outputs); diff != "" || r.Provenance.Path != jobs.PathProvider {
			t.Errorf("item %d (path %s) is not its own answer (-want +got):\n%s", i, r.Provenance.Path, diff)
		}
	}
	if end.Cost == nil || end.Cost.ProviderCalls != 2 {
		t.Errorf("cost %+v, want the two provider answers of our lines", end.Cost)
	}
}

// cancellingPrices are the real prices, cancelling batch id the first
// time an answer is priced: a cancel that lands while a round downloads.
type cancellingPrices struct {
	offload.Prices
	once   sync.Once
	cancel func()
}

func (p *cancellingPrices) Cost(model string, u program.Usage, batch bool) (int64, bool) {
	p.once.Do(p.cancel)
	return p.Prices.Cost(model, u, batch)
}

// TestCancelDuringDownloadStartsNoRound: a batch cancelled while its first
// stage's answers download does not get its next stage sent to the
// provider by the same run.
func TestCancelDuringDownloadStartsNoRound(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{})
	spec := jobs.Spec{ClientSpec: jobs.ClientSpec{Program: "claims"}, ServerSpec: jobs.ServerSpec{Owner: "alice", ProgramVersion: claimsVersion}}
	bt := b.batchOf(t, spec,
		jobs.Inputs{"text": "The sky is blue and grass is green.", "quote": "Grass is green."},
		jobs.Inputs{"text": "Water boils at 100 C at sea level.", "quote": "It boils at 90 C."})
	prices := &cancellingPrices{Prices: b.prices, cancel: func() {
		if _, err := b.bs.Cancel(context.Background(), bt.ID); err != nil {
			t.Error(err)
		}
	}}
	r, err := offload.New(offload.Config{}, offload.Deps{Batches: b.bs, Programs: b.programs, LM: b.lc, Provider: b.api, Prices: prices, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	b.r = r
	b.expand(t, bt)
	b.runToEnd(t, bt.ID)
	if n := b.srv.BatchesCreated(); n != 1 {
		t.Errorf("%d provider batches created, want 1: none for the stage after the cancel", n)
	}
	if end := b.get(t, bt.ID); end.Status != jobs.BatchCancelled || end.Counts.Cancelled != 2 {
		t.Errorf("batch %s %+v, want cancelled", end.Status, end.Counts)
	}
}

// TestLastWordAfterCrashAtTheEnd: a runner that died after its last item
// ended the batch, before it wrote its state and provider object done (the
// writes lost here), writes them when it runs again: the provider object
// does not stay in a phase it left.
func TestLastWordAfterCrashAtTheEnd(t *testing.T) {
	b := setup(t, offload.Config{}, fakelm.BatchConfig{})
	bt := b.qaBatch(t, "Why is the sky blue?")
	b.expand(t, bt)
	b.runToEnd(t, bt.ID)
	ctx := context.Background()
	st, _, err := b.bs.Offload(ctx, bt.ID)
	if err != nil || !st.Done {
		t.Fatalf("state %+v, %v; want done", st, err)
	}
	st.Done, st.Phase = false, jobs.ProviderDownloading
	if err := b.bs.SetOffload(ctx, bt.ID, st); err != nil {
		t.Fatal(err)
	}
	p := *b.get(t, bt.ID).Provider
	p.Phase = jobs.ProviderDownloading
	if err := b.bs.SetProvider(ctx, bt.ID, p); err != nil {
		t.Fatal(err)
	}
	b.runToEnd(t, bt.ID)
	if got := b.get(t, bt.ID).Provider; got == nil || got.Phase != jobs.ProviderDone {
		t.Errorf("provider object %+v, want phase done", got)
	}
}
