package worker

import (
	"context"
	"time"

	"github.com/qaqueue/qaqueue/internal/redisconn"
)

// writePatience is how long a job's record writes (its start, its end) keep
// trying through a Redis outage.
//
// A handler that gives up returns an error, and asynq must then move the task
// to its retry set; when that move fails too, asynq v0.26's syncer cannot redo
// it (it reuses a context cancelled when the first try returned), so the task
// waits for the recoverer: a lease expired for 30 s, checked once a minute,
// 60–120 s after Redis is back. A handler that waits instead finishes a few
// milliseconds after Redis returns. 20 s stays inside asynq's 30 s lease,
// which the heartbeat renews once Redis answers again.
const writePatience = 20 * time.Second

// persist runs write until it succeeds, fails for a reason other than Redis
// being unreachable, ctx ends or writePatience runs out; the last error is
// returned. Retrying is
// safe: every record write is one script, and an end repeated after a lost
// reply is refused (ErrTerminal); a start repeated so counts one attempt
// more, as asynq's own retry of the task would.
func persist(ctx context.Context, write func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, writePatience)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		err := write(ctx)
		if err == nil || !redisconn.Unavailable(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(delay*2, time.Second)
	}
}
