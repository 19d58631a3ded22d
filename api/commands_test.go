package api_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// commandLog is a go-redis hook that records the commands of the API's
// client (pub/sub commands go around hooks: the hub's SUBSCRIBE is not
// among them), each as its name and first key with the job's id elided.
type commandLog struct {
	mu   sync.Mutex
	cmds []string
	// onRead, when set, is called after each read of a job record.
	onRead func()
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		l.add(cmd)
		l.mu.Lock()
		onRead := l.onRead
		l.mu.Unlock()
		if onRead != nil && cmd.Name() == "hgetall" {
			onRead()
		}
		return err
	}
}

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			l.add(cmd)
		}
		return err
	}
}

func (l *commandLog) add(cmd redis.Cmder) {
	name, args := cmd.Name(), cmd.Args()
	key := ""
	switch {
	case (name == "evalsha" || name == "eval") && len(args) > 3:
		key = fmt.Sprint(args[3])
	case len(args) > 1:
		key = fmt.Sprint(args[1])
	}
	// The long poll's lease is taken once a wait has lasted a second
	// (waitLeaseAfter): timing, not the work of a wait.
	if strings.HasPrefix(key, "qa:waits:") {
		return
	}
	if name == "eval" {
		name = "evalsha" // the first run of a script on this server
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cmds = append(l.cmds, name+" "+key)
}

// take returns the commands so far, with id elided, and starts afresh.
func (l *commandLog) take(id string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.cmds))
	for i, c := range l.cmds {
		out[i] = strings.ReplaceAll(c, id, "<id>")
	}
	l.cmds = nil
	return out
}

func (l *commandLog) setOnRead(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onRead = f
}

// TestLongPollRedisCommands counts the Redis commands the API sends for one
// POST /v1/jobs and one GET /v1/jobs/{id}?wait= that waits for the job to
// end: the wait subscribes, reads the record once, and once more after the
// terminal event (the same script wrote the event and the terminal record).
// A wait for a job that has ended already reads it once.
func TestLongPollRedisCommands(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	log := &commandLog{}
	apiRedis := redis.NewClient(db.Options())
	apiRedis.AddHook(log)
	t.Cleanup(func() { _ = apiRedis.Close() })
	b := setup(t, options{
		db:  &redistest.DB{Addr: db.Addr, Index: db.Index, Client: apiRedis},
		api: api.Config{MetricsFlushInterval: time.Hour, Heartbeat: time.Hour}, // no background commands
	})
	// The "worker": its own client, not counted.
	worker, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	finish := func(id string) {
		a, out, err := worker.Start(ctx, id, "w", 0)
		if err != nil || out != store.Started {
			t.Fatalf("start: %v %v", out, err)
		}
		complete(t, a, "done")
	}
	// A first round loads the scripts and asynq's queue list.
	id := b.submit(t, "warm up")
	finish(id)
	b.do(t, "GET", "/v1/jobs/"+id+"?wait=5s", nil, nil)
	log.take(id)

	id = b.submit(t, "q")
	post := log.take(id)
	// The job ends once the wait has read it with its subscription in
	// place (the read its wait then depends on).
	subscribedRead := make(chan struct{})
	var once sync.Once
	log.setOnRead(func() {
		if b.hub.Subscribers() > 0 {
			once.Do(func() { close(subscribedRead) })
		}
	})
	polled := make(chan string, 1)
	go func() {
		_, body := b.do(t, "GET", "/v1/jobs/"+id+"?wait=30s", nil, nil)
		polled <- decode[jobBody](t, body).Status
	}()
	select {
	case <-subscribedRead:
	case <-time.After(patience):
		t.Fatal("the wait never read the job")
	}
	log.setOnRead(nil)
	finish(id)
	if status := <-polled; status != "completed" {
		t.Fatalf("long poll answered %s", status)
	}
	wait := log.take(id)
	b.do(t, "GET", "/v1/jobs/"+id+"?wait=30s", nil, nil)
	ended := log.take(id)

	t.Logf("POST /v1/jobs: %d commands %q", len(post), post)
	t.Logf("GET ?wait= until the end: %d commands %q", len(wait), wait)
	t.Logf("GET ?wait= of an ended job: %d commands %q", len(ended), ended)
	read := "hgetall " + jobs.JobKey("<id>")
	if diff := cmp.Diff([]string{read, read}, wait); diff != "" {
		t.Errorf("a wait until the end (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{read}, ended); diff != "" {
		t.Errorf("a wait for an ended job (-want +got):\n%s", diff)
	}
}
