package api

import (
	"context"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// holdPipelines is a go-redis hook that stops the summary's flush (a
// pipeline that starts with SET of the start time; go-redis's connection
// set-up is a pipeline too) until release is closed, telling entered when it arrives.
type holdPipelines struct {
	entered chan struct{}
	release chan struct{}
}

func (holdPipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (holdPipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h holdPipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() == "set" {
			h.entered <- struct{}{}
			<-h.release
		}
		return next(ctx, cmds)
	}
}

// TestSummaryCountsAFlushUnderWay reads the totals while a flush is moving
// the counts to Redis: they are then neither pending nor in Redis, and a read
// that does not wait for the flush reports them missing (a /metrics JSON
// answered 0 requests this way under load).
func TestSummaryCountsAFlushUnderWay(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	hold := holdPipelines{entered: make(chan struct{}, 1), release: make(chan struct{})}
	rdb := redis.NewClient(db.Options())
	rdb.AddHook(hold)
	t.Cleanup(func() { _ = rdb.Close() })

	m := newSummary(rdb, zerolog.Nop())
	m.record(false, time.Second, nil)
	flushed := make(chan error, 1)
	go func() { flushed <- m.flush(context.Background()) }()
	<-hold.entered // the counts have left pending; Redis has not got them

	read := make(chan int64, 1)
	go func() {
		st, err := m.totals(context.Background())
		if err != nil {
			t.Error(err)
		}
		read <- st.Requests
	}()
	var got int64
	select {
	case got = <-read: // a read that did not wait for the flush
		close(hold.release)
	case <-time.After(200 * time.Millisecond): // it waits, as it should
		close(hold.release)
		got = <-read
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if got != 1 {
		t.Fatalf("totals during a flush counted %d requests, want 1", got)
	}
}
