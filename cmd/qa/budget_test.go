package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// The per-job Redis budget of issue 16: an instant-LM, non-streamed job
// through POST /v1/jobs + GET /v1/jobs/{id}?wait=, the API and a worker
// wired as `qa dev` wires them (startAPI, startWorkerStack), on a
// redis-server of the test's own. Later changes keep these figures or raise
// them with a reason.
const (
	// budgetTrips is the job's round trips, in order (the hub's SUBSCRIBE
	// included): see wantTrips.
	budgetTrips = 9
	// budgetCritical is the round trips the answer waits for: the POST's,
	// the worker's through the complete (the wait's subscribe and read
	// overlap them), none after the completed event.
	budgetCritical = 6
	// budgetCommands bounds the commands a job costs as INFO commandstats
	// counts them (scripts' inner commands too), API and worker together:
	//   - create 6: EVALSHA, LLEN (QUEUE_MAX_PENDING), HSET, PEXPIRE, XADD
	//     (queued), PEXPIRE (store's TestRecordCommands pins each step);
	//   - start 6: EVALSHA, HGETALL (the record the worker runs, read
	//     before the write, which sets started_at on a first start: no
	//     HMGET, HSETNX or HGETALL after), SADD (the worker's index of its
	//     running jobs, fast recovery), HSET, XADD + PUBLISH (started);
	//   - complete 13: EVALSHA, HMGET, HSET, PEXPIRE ×2 (record, events to
	//     RESULT_TTL), XADD + PUBLISH (completed), INCRBY (owner's tokens),
	//     SREM (out of the worker's index), HINCRBY ×4 (the hour's usage
	//     accounting, GET /v1/usage: jobs, input and output tokens, cost;
	//     counted inside the complete so each job counts once, at no round
	//     trip; its PEXPIREAT comes once an hour per key, program, version
	//     and model);
	//   - the LM cache 2: GET (a miss), SET (inside complete's script);
	//   - the wait 3: SUBSCRIBE (confirmed before the read, so no event is
	//     missed), HGETALL, UNSUBSCRIBE;
	//   - asynq 22: enqueue 4 (EVALSHA, EXISTS, HSET, LPUSH), dequeue 7
	//     (EVALSHA, EXISTS, RPOPLPUSH, HSET, HDEL, ZADD, HGET), done 7
	//     (EVALSHA, LREM, ZREM, DEL, INCR, GET, INCR), and an idle worker's
	//     wake between jobs 4 (a dequeue that finds nothing: EVALSHA,
	//     EXISTS, RPOPLPUSH; the BLMOVE that waits), which a busy worker
	//     does not pay.
	// The exactly-once end is the HMGET's status and attempt check inside
	// the scripts: no command of its own.
	budgetCommands = 52
)

// wantTrips is each side's round trips for one job, in the order sent.
// "subscribe" is the wait's pub/sub SUBSCRIBE, which goes around hooks
// (counted from commandstats); it is confirmed before the wait reads the
// job, so no event falls between.
var wantTrips = map[string][]string{
	"POST": {
		"evalsha qa:job:<id> create",         // the record, its idempotency key and queued event
		"evalsha asynq:{interactive}:t:<id>", // asynq's enqueue
	},
	"GET ?wait=": {
		"subscribe",           // the job's channel, confirmed
		"hgetall qa:job:<id>", // the record, read once subscribed: still running (the completed event carries its end)
	},
	"worker": {
		"evalsha asynq:{interactive}:pending", // asynq's dequeue that takes the task
		"evalsha qa:job:<id> start",           // the attempt, the record's spec
		"get qa:lmcache:demo:<hash>",          // the shared LM cache: a miss
		"evalsha qa:job:<id> complete",        // the result, its event (with the record's end), the owner's tokens, the shared LM cache's answer (SET inside)
		"evalsha asynq:{interactive}:active",  // asynq's done: the task goes (no Retention)
	},
}

// TestJobRedisBudget measures what one job costs Redis: (a) its round trips,
// with go-redis hooks on the API's and the worker's clients (a command is
// the job's if it names the job's id, in its arguments or reply, or runs
// on the worker's handler context of the job's task), and (b) its commands
// from INFO commandstats over jobsMeasured jobs, less an idle window as long
// as theirs: asynq's and the services' background loops (heartbeats, the
// forwarder, the janitor, the alias refresh, the batch server's polls) run
// on timers, not per job, and the idle window takes out their rate. What is
// left is rounded: the background's share per job is well under one
// command at this many jobs. The jobs run one at a time, and each one's LM
// call is held until the wait has subscribed and read the job, so each job
// takes the same path: the wait always sees the job end.
func TestJobRedisBudget(t *testing.T) {
	const jobsMeasured = 200
	ctx := context.Background()
	db := redistest.NewServer(t)
	lm, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	gate := &lmGate{next: lm.Handler(), arrived: make(chan struct{}, 1), release: make(chan struct{})}
	lmSrv := httptest.NewServer(gate)
	t.Cleanup(lmSrv.Close)

	vars := map[string]string{
		"REDIS_URL": db.URL(), "HOST": "127.0.0.1", "PORT": "0", "LOG_LEVEL": "warn",
		"CACHE_DIR": t.TempDir(), "WORKER_CONCURRENCY": "4",
	}
	e := env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return vars[k] }}
	cfg, _, err := loadConfig(e)
	if err != nil {
		t.Fatal(err)
	}
	apiLog, workerLog := &jobTrips{}, &jobTrips{}
	open := func(h *jobTrips) redis.UniversalClient {
		rdb, err := openRedis(ctx, cfg, db.URL(), 32)
		if err != nil {
			t.Fatal(err)
		}
		rdb.AddHook(h)
		t.Cleanup(func() { _ = rdb.Close() })
		return rdb
	}
	apiRedis, workerRedis := open(apiLog), open(workerLog)
	log := zerolog.Nop()
	stack, err := startWorkerStack(ctx, cfg, lookupEnv(e), workerRedis, log, newRegistry(), &lmEndpoint{base: lmSrv.URL, key: "demo"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.stop)
	srv, err := startAPI(ctx, cfg, apiRedis, db.URL(), log, newRegistry(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, testwait.Patience)
		defer cancel()
		srv.stop(sctx)
	})
	base := "http://" + srv.addr

	// runJob runs one job: POST, then GET ?wait= once the worker's LM call
	// is held, which the gate releases once the wait has read the job. It
	// returns once asynq has marked the task done. Round trips are recorded
	// when record is set.
	n := 0
	runJob := func(record bool) (id string) {
		t.Helper()
		n++
		if record {
			apiLog.record("POST")
			workerLog.record("worker")
		}
		id = postJob(t, base, fmt.Sprintf("Why is the sky blue? (%d)", n))
		done := workerLog.await(id, "evalsha asynq:{"+jobs.QueueInteractive+"}:active")
		<-gate.arrived
		read := apiLog.await(id, "hgetall "+jobs.JobKey("<id>"))
		if record {
			apiLog.record("GET ?wait=")
		}
		got := make(chan string, 1)
		go func() { got <- longPoll(t, base, id) }()
		<-read
		gate.release <- struct{}{}
		if status := <-got; status != string(jobs.StatusCompleted) {
			t.Fatalf("job %s: %s, want completed", id, status)
		}
		<-done
		return id
	}
	for range 3 { // scripts loaded, the queue registered, the program compiled
		runJob(false)
	}

	// (a) Round trips of one job.
	id := runJob(true)
	recorded := apiLog.take(id)
	// An idle worker waits for work in a BLMOVE (worker/wake.go) sent
	// before the job existed: its reply is the wake-up, not a trip the job
	// adds. Its command is counted below.
	recorded["worker"] = slices.DeleteFunc(workerLog.take(id)["worker"], func(tr trip) bool { return strings.HasPrefix(tr.desc, "blmove ") })
	trips := map[string][]string{}
	for side, trs := range recorded {
		for _, tr := range trs {
			trips[side] = append(trips[side], tr.desc)
		}
	}
	// The critical path: what the answer waits for. The POST's trips, then
	// the worker's through the complete (its later ones, asynq's done
	// included, come after the answer has gone out) or the wait's before
	// the completed event (subscribe and read: they overlap the worker's
	// run), whichever are more, then the wait's after the event.
	var completed int64
	for _, tr := range recorded["worker"] {
		if strings.HasSuffix(tr.desc, " complete") {
			completed = tr.seq
		}
	}
	worker, waitBefore, waitAfter := 0, 0, 0
	for _, tr := range recorded["worker"] {
		if tr.seq <= completed {
			worker++
		}
	}
	for _, tr := range recorded["GET ?wait="] {
		if tr.seq < completed {
			waitBefore++
		} else {
			waitAfter++
		}
	}

	// (b) Commands per job.
	admin := redis.NewClient(db.Options())
	t.Cleanup(func() { _ = admin.Close() })
	before := commandStats(t, admin)
	start := time.Now()
	for range jobsMeasured {
		runJob(false)
	}
	took := time.Since(start)
	busy := diffStats(commandStats(t, admin), before)
	before = commandStats(t, admin)
	time.Sleep(took) // the idle window: not waiting for anything, measuring the background
	idle := diffStats(commandStats(t, admin), before)

	perJob := map[string]float64{}
	total := 0.0
	for name, calls := range busy {
		v := float64(calls-idle[name]) / jobsMeasured
		if math.Abs(v) >= 0.05 {
			perJob[name] = v
			total += v
		}
	}
	// The hub's SUBSCRIBE goes around hooks: commandstats counts it. It is
	// confirmed before the wait's read.
	for range int(math.Round(perJob["subscribe"])) {
		trips["GET ?wait="] = slices.Insert(trips["GET ?wait="], 0, "subscribe")
		waitBefore++
	}
	critical := len(trips["POST"]) + max(worker, waitBefore) + waitAfter

	nTrips := 0
	t.Logf("round trips of one job (%s):", "POST, the worker, GET ?wait=")
	for _, side := range []string{"POST", "worker", "GET ?wait="} {
		t.Logf("  %-10s %2d  %q", side, len(trips[side]), trips[side])
		nTrips += len(trips[side])
	}
	t.Logf("  %-10s %2d (budget %d)", "total", nTrips, budgetTrips)
	t.Logf("  %-10s %2d (budget %d, goal ≤ 7): POST %d, then the worker's %d through the complete or the wait's %d before the event, then the wait's %d",
		"critical", critical, budgetCritical, len(trips["POST"]), worker, waitBefore, waitAfter)
	names := make([]string, 0, len(perJob))
	for name := range perJob {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return int(math.Round(100 * (perJob[b] - perJob[a]))) })
	t.Logf("commands per job, INFO commandstats over %d jobs (%v) less an idle window as long:", jobsMeasured, took.Round(time.Millisecond))
	for _, name := range names {
		t.Logf("  %-10s %6.2f", name, perJob[name])
	}
	commands := int(math.Round(total))
	t.Logf("  %-10s %6.2f → %d (budget %d, goal ≤ 40)", "total", total, commands, budgetCommands)

	for side, want := range wantTrips {
		if !slices.Equal(trips[side], want) {
			t.Errorf("%s: round trips %q, want %q", side, trips[side], want)
		}
	}
	if nTrips > budgetTrips {
		t.Errorf("%d round trips a job, budget %d", nTrips, budgetTrips)
	}
	if critical > budgetCritical {
		t.Errorf("%d round trips on a job's critical path, budget %d", critical, budgetCritical)
	}
	if commands > budgetCommands {
		t.Errorf("%d commands a job, budget %d", commands, budgetCommands)
	}
}

// postJob submits a question and returns the job's id.
// postJob submits question (not streamed), with header's name, value
// pairs, and returns the job's id.
func postJob(t *testing.T, base, question string, header ...string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"question": question, "stream": false})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/jobs", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs: %d %v", resp.StatusCode, err)
	}
	return s.ID
}

// longPoll long-polls a job and returns its status.
func longPoll(t *testing.T, base, id string) string {
	resp, err := http.Get(base + "/v1/jobs/" + id + "?wait=30s")
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	var j struct{ Status string }
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		t.Error(err)
	}
	return j.Status
}

// lmGate holds each chat request to the fake LM until it is released.
type lmGate struct {
	next    http.Handler
	arrived chan struct{}
	release chan struct{}
}

func (g *lmGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/chat/completions") {
		g.arrived <- struct{}{}
		<-g.release
	}
	g.next.ServeHTTP(w, r)
}

// jobTrips is a go-redis hook that records round trips, each with the
// phase of the test it came in, to pick one job's from them (take): each
// command or pipeline that names the job's id (in its arguments or its
// reply) or runs on the context of the job's asynq task.
type jobTrips struct {
	mu     sync.Mutex
	phase  string // "": record nothing
	trips  []trip
	waitID string
	waitOn string
	seen   chan struct{}
}

type trip struct {
	phase, task, text, desc string
	seq                     int64 // the order trips were sent in, on every client
}

// tripClock orders the trips of every jobTrips.
var tripClock atomic.Int64

// record starts recording round trips under phase ("": stop).
func (l *jobTrips) record(phase string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.phase = phase
}

// await returns a channel closed once job id's command described as cmd
// has run.
func (l *jobTrips) await(id, cmd string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waitID, l.waitOn, l.seen = id, cmd, make(chan struct{})
	return l.seen
}

// take returns job id's round trips recorded, by phase, stops recording and
// starts afresh.
func (l *jobTrips) take(id string) map[string][]trip {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]trip{}
	for _, tr := range l.trips {
		if tr.task == id || strings.Contains(tr.text, id) {
			tr.desc = elide(tr.desc, id)
			out[tr.phase] = append(out[tr.phase], tr)
		}
	}
	l.trips, l.phase = nil, ""
	return out
}

func (*jobTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *jobTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		seq := tripClock.Add(1)
		err := next(ctx, cmd)
		l.note(ctx, []redis.Cmder{cmd}, seq)
		return err
	}
}

func (l *jobTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		seq := tripClock.Add(1)
		err := next(ctx, cmds)
		l.note(ctx, cmds, seq)
		return err
	}
}

// note records a trip sent seq-th, once its reply is in (its reply may
// name the job).
func (l *jobTrips) note(ctx context.Context, cmds []redis.Cmder, seq int64) {
	var text, descs []string
	for _, c := range cmds {
		text = append(text, c.String())
		descs = append(descs, describe(c))
	}
	tr := trip{text: strings.Join(text, "\n"), desc: strings.Join(descs, " | "), seq: seq}
	tr.task, _ = asynq.GetTaskID(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.phase != "" {
		tr.phase = l.phase
		l.trips = append(l.trips, tr)
	}
	if l.seen != nil && strings.Contains(tr.text, l.waitID) && elide(tr.desc, l.waitID) == l.waitOn {
		close(l.seen)
		l.seen = nil
	}
}

var hashes = regexp.MustCompile(`[0-9a-f]{32,}`)

// elide puts <id> for the job's id and <hash> for hashes (the LM cache's
// keys).
func elide(desc, id string) string {
	return hashes.ReplaceAllString(strings.ReplaceAll(desc, id, "<id>"), "<hash>")
}

// describe is a command's name and first key; a record script call's op
// after it.
func describe(c redis.Cmder) string {
	args := c.Args()
	name := strings.ToLower(fmt.Sprint(args[0]))
	key, op := "", ""
	switch name {
	case "evalsha", "eval":
		name = "evalsha"
		if n, _ := strconv.Atoi(fmt.Sprint(args[2])); n > 0 {
			key = fmt.Sprint(args[3])
			if strings.HasPrefix(key, "qa:job:") && len(args) > 3+n {
				op = " " + fmt.Sprint(args[3+n])
			}
		}
	default:
		if len(args) > 1 {
			key = fmt.Sprint(args[1])
		}
	}
	return name + " " + key + op
}

// commandStats reads INFO commandstats: calls by command.
func commandStats(t *testing.T, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		out[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.ParseInt(calls, 10, 64)
	}
	return out
}

// diffStats is after − before, without the INFO calls that read them.
func diffStats(after, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for name, calls := range after {
		if name != "info" {
			out[name] = calls - before[name]
		}
	}
	return out
}
