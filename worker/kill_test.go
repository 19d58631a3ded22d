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
	"github.com/qaqueue/qaqueue/batches"
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
	envHelperTTL       = "QAQUEUE_TEST_HELPER_LIVENESS_TTL"
	envHelperBatches   = "QAQUEUE_TEST_HELPER_BATCHES" // "1": it runs batch items too
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
	ttl, err := time.ParseDuration(os.Getenv(envHelperTTL))
	if err != nil {
		t.Fatalf("%s: %v", envHelperTTL, err)
	}
	log := zerolog.New(os.Stderr).With().Timestamp().Str("process", "helper").Logger()
	cfg := worker.Config{ID: os.Getenv(envHelperWorkerID), BatchConcurrency: -1, LivenessTTL: ttl}
	deps := worker.Deps{Redis: rdb, Store: jobStore, Runner: worker.NewProgramRunner(program.NewQA(), lc), Log: log}
	if os.Getenv(envHelperBatches) == "1" {
		cfg.BatchConcurrency = 2
		if deps.Batches, err = batches.NewStore(jobStore, batches.Config{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := worker.New(cfg, deps)
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

// helperWorker is a worker in a child process.
type helperWorker struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	// kill sends the child SIGKILL and waits until it is gone.
	kill func()
}

// signal sends the child sig (SIGSTOP, SIGCONT).
func (h *helperWorker) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := h.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal helper worker: %v", err)
	}
}

// startHelperWorker runs TestHelperWorkerProcess in a child process on b's
// Redis database and fake LM, with liveness TTL ttl, and returns once its
// worker takes jobs.
func (b *bundle) startHelperWorker(t *testing.T, id string, ttl time.Duration, env ...string) *helperWorker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWorkerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envHelperRedisAddr+"="+b.db.Addr,
		envHelperRedisDB+"="+strconv.Itoa(b.db.Index),
		envHelperLMBase+"="+b.lm.URL(), // as setup configures the in-process worker
		envHelperWorkerID+"="+id,
		envHelperTTL+"="+ttl.String(),
	)
	cmd.Env = append(cmd.Env, env...)
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
	kill := func() {
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
	return &helperWorker{cmd: cmd, stderr: stderr, kill: kill}
}

// testTTL is the liveness TTL of the workers in the kill and stall tests:
// short, so that they run in seconds.
const testTTL = time.Second

// runningOn waits until job id runs on worker and its LM call has reached
// the fake LM.
func (b *bundle) runningOn(t *testing.T, id, worker string) {
	t.Helper()
	ctx := context.Background()
	testwait.Within(t, 60*time.Second, "the job runs on "+worker+" and its LM call stalls", func() bool {
		j, err := b.store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return j.Status == jobs.StatusRunning && b.lm.Requests() > 0
	})
	if got := b.db.Client.HGet(ctx, jobs.JobKey(id), "worker").Val(); got != worker {
		t.Fatalf("job runs on worker %q, want %q", got, worker)
	}
}

// checkRecoveredOnce checks that job j, whose worker was lost, ended
// completed once, by a later attempt on another worker, after a retrying
// event that says the worker was lost; it returns when that attempt
// started and when the job completed.
func (b *bundle) checkRecoveredOnce(t *testing.T, j *jobs.Job, lost string) (restarted, completed time.Time) {
	t.Helper()
	evs := b.events(t, j.ID)
	// Two attempts as a rule; three when the machine is so loaded that
	// the fake LM took the stall from the new attempt's call.
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
	lostEvents := 0
	for _, e := range evs {
		switch e.Type {
		case jobs.EventRetrying:
			if strings.Contains(string(e.Data), "worker "+lost+" was lost") {
				lostEvents++
			}
		case jobs.EventCompleted:
			completed = idTime(e.ID)
		case jobs.EventStarted:
			restarted = idTime(e.ID) // the last one
		}
	}
	if lostEvents != 1 {
		t.Fatalf("events = %s; want one retrying event saying worker %s was lost", describe(evs), lost)
	}
	if got := b.db.Client.HGet(context.Background(), jobs.JobKey(j.ID), "worker").Val(); got == lost {
		t.Fatalf("the record says the lost worker finished the job")
	}
	return restarted, completed
}

// TestKilledWorkerJobCompletesElsewhere: a worker process dies (SIGKILL)
// mid-job; its liveness key expires, a live worker's recoverer puts the job
// back under a new task, and another worker finishes it, once: seconds
// after the kill, where asynq's own lease recovery takes a minute or two.
// The old task is left to asynq and refused when it runs again.
func TestKilledWorkerJobCompletesElsewhere(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{TaskRetention: time.Hour}) // the new task stays: its retries are read below
	const helperID = "helper-to-kill"
	helper := b.startHelperWorker(t, helperID, testTTL)

	// The first LM call with this prompt stalls until its client hangs up.
	id := b.submit(t, ask("long [[fakelm:stall,times=1]]", "", jobs.Options{}))
	b.runningOn(t, id, helperID)

	helper.kill()
	killed := time.Now()
	b.startWorker(t, worker.Config{BatchConcurrency: -1, LivenessTTL: testTTL})

	j := b.waitEndWithin(t, id, 150*time.Second)
	restartedAt, completedAt := b.checkRecoveredOnce(t, j, helperID)
	// It ran again as the recoverer's task, not asynq's retry of the old one.
	insp := asynq.NewInspectorFromRedisClient(b.db.Client)
	if info, err := insp.GetTaskInfo(jobs.QueueInteractive, id+".1"); err != nil || info.Retried != j.Attempts-2 {
		t.Fatalf("recovered task %s.1: %+v, %v", id, info, err)
	}
	if n := b.db.Client.SCard(context.Background(), jobs.WorkerJobsKey(helperID)).Val(); n != 0 {
		t.Fatalf("the killed worker's index still holds %d jobs", n)
	}
	t.Logf("kill → restarted %v, kill → completed %v (TTL %v)",
		restartedAt.Sub(killed).Round(10*time.Millisecond), completedAt.Sub(killed).Round(10*time.Millisecond), testTTL)
}

// TestKilledWorkerBatchItemCompletesElsewhere: as a job's, a batch item
// whose worker process dies mid-run runs again elsewhere within seconds,
// under a new task, and is counted once.
func TestKilledWorkerBatchItemCompletesElsewhere(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	const helperID = "helper-to-kill-batch"
	helper := b.startHelperWorker(t, helperID, testTTL, envHelperBatches+"=1")
	id := createBatch(t, b.batches, "o", []jobs.BatchItem{{CustomID: "c0", Inputs: jobs.Inputs{"question": "long item [[fakelm:stall,times=1]]"}}}, true)
	testwait.Within(t, 60*time.Second, "the item runs on the helper and its LM call stalls", func() bool {
		return b.db.Client.HGet(ctx, jobs.BatchAttemptsKey(id), "worker:0").Val() == helperID && b.lm.Requests() > 0
	})

	helper.kill()
	killed := time.Now()
	b.startWorker(t, worker.Config{LivenessTTL: testTTL})
	var end *jobs.Batch
	testwait.Within(t, 150*time.Second, "the batch to end", func() bool {
		var err error
		if end, err = b.batches.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
		return end.Status.Terminal()
	})
	t.Logf("kill → batch ended %v", time.Since(killed).Round(10*time.Millisecond))
	if end.Status != jobs.BatchCompleted || end.Counts.Completed != 1 || end.Counts.Failed != 0 {
		t.Fatalf("batch = %+v", end)
	}
	if got := b.db.Client.HGet(ctx, jobs.BatchAttemptsKey(id), "recoveries:0").Val(); got != "1" {
		t.Fatalf("item recovered %q times, want 1: it ran again through the recoverer, not asynq", got)
	}
	if n := b.db.Client.SCard(ctx, jobs.WorkerItemsKey(helperID)).Val(); n != 0 {
		t.Fatalf("the killed worker's item index still holds %d items", n)
	}
}

// TestStalledWorkerWritesNothing: a worker process stops (SIGSTOP) mid-job
// for longer than its liveness TTL; its job runs again and completes on
// another worker. When the stalled worker resumes (SIGCONT) and its LM call
// answers, every write of its lost attempt is refused: one completed event,
// no token from it after the job was put back, the tokens counted once.
func TestStalledWorkerWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	ctx := context.Background()
	const helperID = "helper-to-stall"
	helper := b.startHelperWorker(t, helperID, testTTL)
	owner := "stall-owner"
	// The first call stalls for a while, then streams its answer.
	id := b.submit(t, ask("stalled [[fakelm:stall,for=8s,times=1]]", owner, jobs.Options{Stream: true}))
	b.runningOn(t, id, helperID)

	helper.signal(t, syscall.SIGSTOP)
	stopped := time.Now()
	b.startWorker(t, worker.Config{BatchConcurrency: -1, LivenessTTL: testTTL})
	j := b.waitEndWithin(t, id, 150*time.Second)
	restartedAt, _ := b.checkRecoveredOnce(t, j, helperID)
	t.Logf("stop → restarted %v", restartedAt.Sub(stopped).Round(10*time.Millisecond))
	helper.signal(t, syscall.SIGCONT)

	// The resumed worker's call answers when its stall ends; its first
	// write is refused and it stops the run.
	testwait.Within(t, 60*time.Second, "the resumed worker gives its run up", func() bool {
		return strings.Contains(helper.stderr.String(), "job stopped")
	})
	evs := b.events(t, id)
	if count(evs, jobs.EventCompleted) != 1 || count(evs, jobs.EventStarted) != j.Attempts {
		t.Fatalf("events after the resume = %s", describe(evs))
	}
	for _, e := range evs {
		if e.Type == jobs.EventToken && strings.Contains(string(e.Data), `"attempt":1,`) {
			t.Fatalf("a token of the lost attempt was published: %s", describe(evs))
		}
	}
	used, err := store.TokensUsed(ctx, b.db.Client, owner, jobs.UsageDay(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(jobs.TotalTokens(j.Result.Usage)); used != want || want == 0 {
		t.Fatalf("tokens counted %d, want the completed attempt's %d", used, want)
	}
	// The lost attempt's LM call was paid (the fake LM saw it) but never
	// reported: lm_calls counts the attempts that recorded their calls.
	if calls := j.Result.Provenance.LMCalls; calls != 1 || b.lm.Requests() < 2 {
		t.Fatalf("lm_calls %d over %d LM requests; want 1 recorded of at least 2 made", calls, b.lm.Requests())
	}
}

// describe lists events with their data, for failure messages.
func describe(evs []jobs.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s %s %s", e.ID, e.Type, e.Data)
	}
	return b.String()
}
