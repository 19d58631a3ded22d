package api_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/redistest"
)

// TestBatchCancelAnswersWhenFreeingFails: the cancel itself worked; Redis
// refusing the freeing of the unstarted items' inputs after it must not turn
// the answer into a 5xx (the items' tasks free them as they drain).
func TestBatchCancelAnswersWhenFreeingFails(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	var refuse atomic.Bool
	db.Client.AddHook(redistest.RefuseScripts{Match: func(_ []string, args []any) bool {
		return refuse.Load() && len(args) > 0 && args[0] == "free_inputs"
	}})
	b := setup(t, options{db: db})
	v := b.upload(t, jsonl(`{"custom_id":"a","question":"a?"}`, `{"custom_id":"b","question":"b?"}`), "application/x-ndjson", nil)
	bs, err := batches.NewStore(b.store, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Expand(context.Background(), v.ID, 0); err != nil {
		t.Fatal(err)
	}
	refuse.Store(true)
	resp, out := b.do(t, "POST", "/v1/batches/"+v.ID+"/cancel", nil, nil)
	if resp.StatusCode != http.StatusOK || decode[batchView](t, out).Status != "cancelling" {
		t.Fatalf("cancel with the freeing refused: %d %s", resp.StatusCode, out)
	}
}
