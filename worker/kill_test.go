package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// The environment of a helper worker process (TestHelperWorkerProcess).
const (
	envHelperRedisAddr = "QAQUEUE_TEST_HELPER_REDIS_ADDR"
	envHelperRedisDB   = "QAQUEUE_TEST_HELPER_REDIS_DB"
	envHelperLMBase    = "QAQUEUE_TEST_HELPER_LM_BASE"
	envHelperWorkerID  = "QAQUEUE_TEST_HELPER_WORKER_ID"
	helperReady        = "helper worker ready"
)

// TestHelperWorkerProcess is not a test: it is the worker process that
// TestKilledWorkerJobCompletesElsewhere starts (the test binary run again with
// -test.run=^TestHelperWorkerProcess$) and kills. Without its environment it
// returns at once. It runs a worker until it is killed, or until its stdin
// closes (the parent test process died), and prints helperReady on stdout
// once the worker takes jobs.
func TestHelperWorkerProcess(t *testing.T) {
	t.Parallel()
	addr := os.Getenv(envHelperRedisAddr)
	if addr == "" {
		return
	}
	db, err := strconv.Atoi(os.Getenv(envHelperRedisDB))
	if err != nil {
		t.Fatalf("%s: %v", envHelperRedisDB, err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	defer rdb.Close()
	// A stalled LM call must last until the kill, not end in a timeout.
	lc, err := lmclient.New(lmclient.Config{APIBase: os.Getenv(envHelperLMBase), APIKey: "test", Timeout: 10 * time.Minute}, lmclient.Deps{Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	jobStore, err := store.NewJobs(rdb, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(os.Stderr).With().Timestamp().Str("process", "helper").Logger()
	w, err := worker.New(worker.Config{ID: os.Getenv(envHelperWorkerID), BatchConcurrency: -1},
		worker.Deps{Redis: rdb, Store: jobStore, Runner: worker.NewProgramRunner(program.NewQA(), lc), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	fmt.Println(helperReady)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop() }()
	<-ctx.Done()
}

// lockedBuffer collects a child's output; ready closes when a line equal to
// helperReady has been written.
type lockedBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.ready != nil && strings.Contains(b.buf.String(), helperReady+"\n") {
		b.once.Do(func() { close(b.ready) })
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startHelperWorker runs TestHelperWorkerProcess in a child process on b's
// Redis database and fake LM, and returns once its worker takes jobs. kill
// sends the child SIGKILL and waits until it is gone.
func (b *bundle) startHelperWorker(t *testing.T, id string) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWorkerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envHelperRedisAddr+"="+b.db.Addr,
		envHelperRedisDB+"="+strconv.Itoa(b.db.Index),
		envHelperLMBase+"="+b.lm.URL(), // as setup configures the in-process worker
		envHelperWorkerID+"="+id,
	)
	stdout := &lockedBuffer{ready: make(chan struct{})}
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// The child exits when this pipe closes, so it cannot outlive this
	// process. Keep the write end referenced until then: a collected
	// *os.File closes itself.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	kill = func() {
		_ = cmd.Process.Signal(syscall.SIGKILL) // an error: it has exited already
		<-exited
	}
	t.Cleanup(func() {
		kill()
		_ = stdin.Close()
		if t.Failed() {
			t.Logf("helper worker (%v) stdout:\n%s\nstderr:\n%s", waitErr, stdout, stderr)
		}
	})
	select {
	case <-stdout.ready:
	case <-exited:
		t.Fatalf("helper worker exited before it was ready: %v\nstdout:\n%s\nstderr:\n%s", waitErr, stdout, stderr)
	case <-time.After(60 * time.Second):
		t.Fatal("helper worker not ready within 60s")
	}
	return kill
}

// TestKilledWorkerJobCompletesElsewhere: a worker process dies (SIGKILL)
// mid-job; another worker finishes the job, and the record ends once.
//
// Recovery is asynq's: the dead server's lease on the task expires within
// 30 s, and a live server's recoverer (at its start, then every minute) takes
// back leases that expired at least 30 s earlier, so the job runs again
// 55–120 s after the kill, in practice about 60 s, since the replacement
// starts at the kill. The lease (30 s), the recoverer's interval (1 min) and
// its 30 s cutoff are hard-coded in asynq v0.26: no public setting shortens
// this. Our retryDelay sends a lost lease to run again at once.
func TestKilledWorkerJobCompletesElsewhere(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits about a minute for asynq to recover the lost lease")
	}
	b := setup(t, store.Config{TaskRetention: time.Hour}) // the task stays: its retries are read below
	ctx := context.Background()
	const helperID = "helper-to-kill"
	kill := b.startHelperWorker(t, helperID)

	// The first LM call with this prompt stalls until its client hangs up.
	id := b.submit(t, ask("long [[fakelm:stall,times=1]]", "", jobs.Options{}))
	testwait.Within(t, 60*time.Second, "the helper runs the job and its LM call stalls", func() bool {
		j, err := b.store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return j.Status == jobs.StatusRunning && b.lm.Requests() > 0
	})
	if got := b.db.Client.HGet(ctx, jobs.JobKey(id), "worker").Val(); got != helperID {
		t.Fatalf("job runs on worker %q, want %q", got, helperID)
	}

	kill()
	killed := time.Now()
	b.startWorker(t, worker.Config{BatchConcurrency: -1})

	j := b.waitEndWithin(t, id, 150*time.Second)
	evs := b.events(t, id)
	// Two attempts as a rule. Three when the machine is so loaded that the
	// helper was killed after fakelm counted its request but before fakelm
	// read its body and took the stall: the replacement's first call then
	// stalls until LM_TIMEOUT and is retried. Either way: completed, once.
	if j.Status != jobs.StatusCompleted || j.Attempts < 2 || j.Attempts > 3 {
		t.Fatalf("job = %+v %+v; events %s", j, j.Error, describe(evs))
	}
	terminal := 0
	for _, typ := range []jobs.EventType{jobs.EventCompleted, jobs.EventFailed, jobs.EventCancelled, jobs.EventExpired} {
		terminal += count(evs, typ)
	}
	if count(evs, jobs.EventCompleted) != 1 || terminal != 1 || count(evs, jobs.EventStarted) != j.Attempts {
		t.Fatalf("events = %s; want one completed, one terminal event, a started per attempt", describe(evs))
	}
	var completedAt, restartedAt time.Time
	for _, e := range evs {
		switch e.Type {
		case jobs.EventCompleted:
			completedAt = idTime(e.ID)
		case jobs.EventStarted:
			restartedAt = idTime(e.ID) // the last one
		}
	}
	if got := b.db.Client.HGet(ctx, jobs.JobKey(id), "worker").Val(); got == helperID {
		t.Fatalf("the record says the killed worker finished the job")
	}

	// It came back through asynq's recoverer, which spent one retry on it.
	insp := asynq.NewInspectorFromRedisClient(b.db.Client)
	var info *asynq.TaskInfo
	testwait.Within(t, 30*time.Second, "the task is marked completed", func() bool {
		var err error
		info, err = insp.GetTaskInfo(jobs.QueueInteractive, id)
		if err != nil {
			t.Fatal(err)
		}
		return info.State == asynq.TaskStateCompleted
	})
	// One retry per attempt after the first: the lease's, and in the loaded
	// case above the stalled call's too, whose error is then the last.
	if info.Retried != j.Attempts-1 || (j.Attempts == 2 && !strings.Contains(info.LastErr, asynq.ErrLeaseExpired.Error())) {
		t.Fatalf("task retried %d times over %d attempts, last error %q; want one retry per attempt after the first, the lease's last when there were two",
			info.Retried, j.Attempts, info.LastErr)
	}
	t.Logf("kill → restarted %v, kill → completed %v (events %s)",
		restartedAt.Sub(killed).Round(10*time.Millisecond), completedAt.Sub(killed).Round(10*time.Millisecond), types(evs))
}

// describe lists events with their data, for failure messages.
func describe(evs []jobs.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s %s %s", e.ID, e.Type, e.Data)
	}
	return b.String()
}
