package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// TestSubmitEnqueueFailureIsUnavailable: asynq reports a failed EVAL as text,
// without the network error behind it. Submit must still say the storage is
// unavailable, so the API answers 503, not 500, and take the record back.
func TestSubmitEnqueueFailureIsUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	faulty := redis.NewClient(b.db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	// Redis goes away between the record's creation and asynq's enqueue.
	faulty.AddHook(redistest.RefuseScripts{Match: func(keys []string, _ []any) bool {
		return len(keys) > 0 && strings.HasPrefix(keys[0], "asynq:")
	}})
	client := store.NewClient(faulty, b.store)

	_, err := client.Submit(ctx, ask("alice", "Why?"))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("submit with a failing enqueue: err = %v, want ErrUnavailable", err)
	}
	keys, err := b.db.Client.Keys(ctx, "qa:job:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("records left behind by a refused submit: %v", keys)
	}

	// Against a healthy Redis the same store accepts the job.
	if _, err := store.NewClient(b.db.Client, b.store).Submit(ctx, ask("alice", "Why?")); err != nil {
		t.Fatalf("submit after the fault: %v", err)
	}
}
