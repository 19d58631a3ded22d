package batches_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// TestBatchEnqueueFailureIsUnavailable: a batch's creation, like Submit
// (TestSubmitEnqueueFailureIsUnavailable), says the storage is unavailable
// when asynq cannot enqueue: its items are stored, then its expansion task
// cannot be enqueued.
func TestBatchEnqueueFailureIsUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	faulty := redis.NewClient(b.db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	faulty.AddHook(redistest.RefuseScripts{Match: func(keys []string, _ []any) bool {
		return len(keys) > 0 && strings.HasPrefix(keys[0], "asynq:")
	}})
	jobStore, err := store.NewJobs(faulty, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batches.NewStore(jobStore, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = upload(ctx, bs, "alice", []jobs.BatchItem{{CustomID: "a", Inputs: ask("Why?")}})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("batch with a failing enqueue: err = %v, want ErrUnavailable", err)
	}
}
