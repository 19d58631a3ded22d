package batches_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// TestOffloadStateLivesWithTheBatch: the offload runner's state is read
// back as written, lives as long as its batch while it runs, takes the
// results' life when the batch ends, and goes with its delete.
func TestOffloadStateLivesWithTheBatch(t *testing.T) {
	ctx := context.Background()
	b := setup(t, store.Config{})
	bs := newBatches(t, b, batches.Config{ResultTTL: time.Minute, CompletionWindow: time.Hour})
	bt := createBatch(t, bs, 3)

	st := batches.OffloadState{Round: 1, Phase: jobs.ProviderUploading}
	chunks := []batches.OffloadChunk{{From: 0, To: 2, Requests: 2}, {From: 2, To: 3, Requests: 1}}
	if err := bs.PlanOffloadRound(ctx, bt.ID, st, chunks); err != nil {
		t.Fatal(err)
	}
	chunks[1].FileID, chunks[1].Creating = "file-1", true
	if err := bs.SetOffloadChunk(ctx, bt.ID, 1, 1, chunks[1]); err != nil {
		t.Fatal(err)
	}
	cps := []jobs.Checkpoint{{StageUsage: jobs.StageUsage{Stage: "draft", LMCalls: 1}, Values: []byte(`{"a": 1}`)}}
	if err := bs.SetStages(ctx, bt.ID, 2, cps); err != nil {
		t.Fatal(err)
	}
	for _, c := range []batches.ItemCost{{Micros: 5, LiveMicros: 10, ProviderCalls: 1}, {Micros: 5, LiveMicros: 10, ProviderCalls: 1}} {
		if err := bs.SetItemCost(ctx, bt.ID, 0, 1, c); err != nil { // a repeat counts once
			t.Fatal(err)
		}
	}
	if err := bs.SetItemCost(ctx, bt.ID, 0, 2, batches.ItemCost{LiveMicros: 7, Micros: 7, LiveCalls: 1}); err != nil {
		t.Fatal(err)
	}
	if err := bs.DeferItem(ctx, bt.ID, 1, 2, 1); err != nil {
		t.Fatal(err)
	}

	gotSt, gotChunks, err := bs.Offload(ctx, bt.ID)
	if err != nil {
		t.Fatal(err)
	}
	st.Chunks, st.Planned = 2, true
	if diff := cmp.Diff(st, gotSt); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(chunks, gotChunks); diff != "" {
		t.Errorf("chunks (-want +got):\n%s", diff)
	}
	stages, err := bs.Stages(ctx, bt.ID, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if stages[0] != nil || len(stages[2]) != 1 || stages[2][0].Stage != "draft" {
		t.Errorf("stages = %+v", stages)
	}
	cost, err := bs.OffloadCost(ctx, bt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := (batches.ItemCost{Micros: 12, LiveMicros: 17, ProviderCalls: 1, LiveCalls: 1}); cost != want {
		t.Errorf("cost = %+v, want %+v", cost, want)
	}
	if d, err := bs.Deferred(ctx, bt.ID, 1); err != nil || !cmp.Equal(d, map[int]int{2: 1}) {
		t.Errorf("deferred = %v, %v", d, err)
	}

	next := batches.OffloadState{Round: 2, Stage: 1, Phase: jobs.ProviderUploading}
	if err := bs.AdvanceOffload(ctx, bt.ID, next, 1, 2); err != nil {
		t.Fatal(err)
	}
	if gotSt, gotChunks, err := bs.Offload(ctx, bt.ID); err != nil || gotSt != next || len(gotChunks) != 0 {
		t.Errorf("after advancing: %+v %+v, %v", gotSt, gotChunks, err)
	}
	if n := b.db.Client.HLen(ctx, jobs.BatchOffloadKey(bt.ID)).Val(); n != 4 { // the state, two costs, a deferral
		t.Errorf("the offload hash holds %d fields after advancing, want the round's chunks gone", n)
	}

	ttl := func(key string) time.Duration {
		t.Helper()
		d, err := b.db.Client.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	keys := []string{jobs.BatchOffloadKey(bt.ID), jobs.BatchStagesKey(bt.ID)}
	for _, k := range keys {
		if d := ttl(k); d <= time.Hour {
			t.Errorf("%s lives %v while its batch runs, want its batch's (window + results: over an hour)", k, d)
		}
	}
	// Ended (its window passed): the results' life.
	later := time.Now().Add(2 * time.Hour)
	batches.SetClock(bs, func() time.Time { return later })
	if expired, err := bs.Expire(ctx, bt.ID); err != nil || !expired {
		t.Fatalf("expire: %v, %v", expired, err)
	}
	for _, k := range keys {
		if d := ttl(k); d <= 0 || d > time.Minute {
			t.Errorf("%s lives %v after its batch ended, want its results' minute", k, d)
		}
	}
	if err := bs.Delete(ctx, bt.ID); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if n := b.db.Client.Exists(ctx, k).Val(); n != 0 {
			t.Errorf("%s outlived its batch's delete", k)
		}
	}
}
