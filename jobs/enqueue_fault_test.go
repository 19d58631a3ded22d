package jobs_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// failAsynqScripts makes asynq's Lua scripts fail as if Redis had gone away
// between the record's creation and the enqueue, leaving every other command
// to the real server.
type failAsynqScripts struct{}

func (failAsynqScripts) DialHook(next redis.DialHook) redis.DialHook { return next }

func (failAsynqScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (failAsynqScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		name := strings.ToLower(cmd.Name())
		if (name == "evalsha" || name == "eval") && len(args) > 3 {
			if key, _ := args[3].(string); strings.HasPrefix(key, "asynq:") {
				err := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmd)
	}
}

// TestSubmitEnqueueFailureIsUnavailable: asynq reports a failed EVAL as text,
// without the network error behind it. Submit must still say the storage is
// unavailable (so the API answers 503, not 500) and take the record back.
func TestSubmitEnqueueFailureIsUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, jobs.Config{})
	ctx := context.Background()
	faulty := redis.NewClient(b.db.Client.Options())
	t.Cleanup(func() { _ = faulty.Close() })
	faulty.AddHook(failAsynqScripts{})
	client := jobs.NewClient(faulty, b.store)

	_, err := client.Submit(ctx, jobs.SubmitRequest{Owner: "alice", Question: "Why?"})
	if !errors.Is(err, jobs.ErrUnavailable) {
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
	if _, err := jobs.NewClient(b.db.Client, b.store).Submit(ctx, jobs.SubmitRequest{Owner: "alice", Question: "Why?"}); err != nil {
		t.Fatalf("submit after the fault: %v", err)
	}
}
