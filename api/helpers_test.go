package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/programstest"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testlog"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

// patience bounds how long a test waits for something that should happen
// promptly, so a bug fails the test instead of hanging it. It is not a timing
// assertion.
const patience = 20 * time.Second

type options struct {
	api   api.Config
	jobs  store.Config
	batch batches.Config
	// programs configures the registry (PROGRAM_MAX_BYTES, ...).
	programs programs.Config
	db       *redistest.DB // nil: a fresh database on the shared server
	health   api.HealthInfo
	logTo    io.Writer // nil: bundle.logs, printed when the test fails
	// tracing is Deps.Tracing (nil: tracing off).
	tracing trace.TracerProvider
}

type bundle struct {
	db     *redistest.DB
	store  *store.Jobs
	client *store.Client
	hub    *store.Hub
	// programs is the API's registry, its alias cache running.
	programs *programs.Registry
	batches  *batches.Store
	srv      *api.Server
	reg      *prometheus.Registry
	ts       *httptest.Server
	url      string
	http     *http.Client
	logs     *testlog.Buffer
}

// setup starts the API on a real Redis behind a real HTTP server.
func setup(t *testing.T, o options) *bundle {
	t.Helper()
	db := o.db
	if db == nil {
		db = redistest.New(t)
	}
	jobStore, err := store.NewJobs(db.Client, o.jobs)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batches.NewStore(jobStore, o.batch)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	log := zerolog.New(logs)
	if o.logTo != nil {
		log = zerolog.New(o.logTo)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hub := store.NewHub(ctx, db.Client, log)
	hubDone := make(chan struct{})
	go func() { hub.Run(ctx); close(hubDone) }()
	client := store.NewClient(db.Client, jobStore)
	registry := programstest.New(t, db.Client, o.programs)
	programsDone := make(chan struct{})
	go func() { registry.Run(ctx, nil); close(programsDone) }()
	reg := prometheus.NewRegistry()
	srv, err := api.New(o.api, api.Deps{
		Redis: db.Client, Client: client, Store: jobStore, Hub: hub, Batches: bs, Programs: registry, Log: log, Registry: reg, Health: o.health,
		Tracing: o.tracing,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = srv.HTTPServer("")
	ts.Start()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), patience)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		ts.Close()
		_ = hub.Close()
		cancel()
		<-hubDone
		<-programsDone
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &bundle{db: db, store: jobStore, client: client, hub: hub, programs: registry, batches: bs, srv: srv, reg: reg, ts: ts, url: ts.URL, http: ts.Client(), logs: logs}
}

// do sends a request and returns the response with its body read.
func (b *bundle) do(t *testing.T, method, path string, body any, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(v)
	case []byte:
		r = bytes.NewReader(v)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := b.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, out
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, body, err)
	}
	return v
}

// submitted is the body of a 202.
type submitted struct {
	ID     string            `json:"id"`
	Status string            `json:"status"`
	Links  map[string]string `json:"links"`
}

// submit posts a job and returns its id.
func (b *bundle) submit(t *testing.T, question string) string {
	t.Helper()
	resp, body := b.do(t, "POST", "/v1/jobs", map[string]any{"question": question}, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	return decode[submitted](t, body).ID
}

// start begins an attempt of job id, as a worker would.
func (b *bundle) start(t *testing.T, id string) *store.Attempt {
	t.Helper()
	a, out, err := b.store.Start(context.Background(), id, "test-worker", 0)
	if err != nil || out != store.Started {
		t.Fatalf("start %s: %v %v", id, out, err)
	}
	return a
}

func token(t *testing.T, a *store.Attempt, content string) {
	t.Helper()
	if err := a.Token(context.Background(), "answer", content); err != nil {
		t.Fatalf("token: %v", err)
	}
}

const testUsage = `{"fake/model":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`

func result(answer string) *jobs.Result {
	return &jobs.Result{
		Outputs:        jobs.Outputs{{Name: "reasoning", Value: "Because."}, {Name: "answer", Value: answer}, {Name: "key_concepts", Value: "testing"}, {Name: "question_type", Value: "factual"}},
		Provenance:     jobs.Provenance{Model: "fake/model", LMCalls: 1},
		Usage:          json.RawMessage(testUsage),
		LatencySeconds: 0.25,
	}
}

func complete(t *testing.T, a *store.Attempt, answer string) {
	t.Helper()
	r := result(answer)
	if _, err := a.Complete(context.Background(), r, jobs.TotalTokens(r.Usage)); err != nil {
		t.Fatalf("complete: %v", err)
	}
}

// jobStatus reads a job's status from Redis.
func (b *bundle) jobStatus(t *testing.T, id string) jobs.Status {
	t.Helper()
	j, err := b.store.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return j.Status
}

// behaviour is what the test worker does with an attempt it started.
// It is given the job's spec, as the start handed it over (a.Spec).
type behaviour func(ctx context.Context, a *store.Attempt, s jobs.Spec) error

// answerBehaviour streams "Answer to: <question>" in three tokens (when the
// job streams) and completes.
func answerBehaviour(ctx context.Context, a *store.Attempt, s jobs.Spec) error {
	answer := "Answer to: " + s.Question()
	if s.Options.Stream {
		for _, tok := range []string{"Answer", " to: ", s.Question()} {
			if err := a.Token(ctx, "answer", tok); err != nil {
				return err
			}
		}
	}
	r := result(answer)
	_, err := a.Complete(ctx, r, jobs.TotalTokens(r.Usage))
	return err
}

// startWorker runs an asynq server on the test's Redis whose handler speaks
// the real worker protocol (store.Start, Attempt.Token/Complete/Fail/Retry)
// and does what behave says. It stands in for worker.New until the worker
// package lands.
func (b *bundle) startWorker(t *testing.T, behave behaviour) {
	t.Helper()
	srv := asynq.NewServerFromRedisClient(b.db.Client, asynq.Config{
		Concurrency:       20,
		Queues:            map[string]int{jobs.QueueInteractive: 1, jobs.QueueBatch: 1},
		TaskCheckInterval: 5 * time.Millisecond,
		RetryDelayFunc:    func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond },
		ShutdownTimeout:   2 * time.Second,
		LogLevel:          asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(jobs.TaskTypePredict, func(ctx context.Context, task *asynq.Task) error {
		p, err := jobs.ParsePayload(task.Payload())
		if err != nil {
			return errors.Join(err, asynq.SkipRetry)
		}
		a, out, err := b.store.Start(ctx, p.JobID, "test-worker", 0)
		if err != nil {
			return err
		}
		if out != store.Started {
			return nil
		}
		err = behave(ctx, a, a.Spec)
		if errors.Is(err, errRetry) {
			return err // asynq runs the task again
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

// errRetry asks startWorker's handler to have asynq run the task again.
var errRetry = errors.New("retry")

// waitForEnd blocks a behaviour until its job has ended (cancelled) or ctx is
// done, watching the job's events on the hub like a real worker watches the
// cancel channel.
func (b *bundle) waitForEnd(ctx context.Context, id string) error {
	sub, err := b.hub.Subscribe(ctx, jobs.Channel(id))
	if err != nil {
		return err
	}
	defer sub.Close()
	if j, err := b.store.Get(ctx, id); err != nil || j.Status.Terminal() {
		return err
	}
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok || ev.Type.Terminal() {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sseFrame is one parsed Server-Sent Events frame (or a comment).
type sseFrame struct {
	ID, Event, Data, Retry string
	Comment                string
	HasID                  bool
}

type sseStream struct {
	resp   *http.Response
	frames chan sseFrame
	cancel context.CancelFunc
}

// openSSE starts an event stream and checks its headers.
func (b *bundle) openSSE(t *testing.T, method, path string, body any, hdr http.Header) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := b.http.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("open %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("open %s: %d %s", path, resp.StatusCode, body)
	}
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: header %s = %q, want %q", path, k, got, want)
		}
	}
	s := &sseStream{resp: resp, frames: make(chan sseFrame, 1<<16), cancel: cancel}
	t.Cleanup(s.close)
	s.read()
	return s
}

// read parses frames in the background until the stream ends.
func (s *sseStream) read() {
	go func() {
		defer close(s.frames)
		br := bufio.NewReaderSize(s.resp.Body, 1<<20)
		var f sseFrame
		any := false
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			if line == "" {
				if any {
					s.frames <- f
				}
				f, any = sseFrame{}, false
				continue
			}
			any = true
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "":
				f.Comment = value
			case "id":
				f.ID, f.HasID = value, true
			case "event":
				f.Event = value
			case "retry":
				f.Retry = value
			case "data":
				if f.Data != "" {
					f.Data += "\n"
				}
				f.Data += value
			}
		}
	}()
}

// next returns the next frame other than a comment; false at the end.
func (s *sseStream) next(t *testing.T) (sseFrame, bool) {
	t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				return f, false
			}
			if f.Comment != "" && f.Data == "" && f.Event == "" {
				continue
			}
			return f, true
		case <-timer.C:
			t.Fatalf("no frame within %v", patience)
		}
	}
}

// rest returns every frame (comments skipped) until the stream ends.
func (s *sseStream) rest(t *testing.T) []sseFrame {
	t.Helper()
	var out []sseFrame
	for {
		f, ok := s.next(t)
		if !ok {
			return out
		}
		out = append(out, f)
	}
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// quietRedis drops go-redis's own log lines (dial failures while a test has
// stopped Redis on purpose).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	redis.SetLogger(quietRedis{})
	// After a failed dial go-redis retries in the background, sleeping a
	// second between tries, and sees its pool closed only when it wakes:
	// that goroutine outlives a test that stopped Redis by up to a second.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// runWorker runs a worker on the bundle's Redis and job store until the test
// ends, logging into the API's log; deps names the rest (the runner, the
// batches).
func (b *bundle) runWorker(t *testing.T, cfg worker.Config, deps worker.Deps) {
	t.Helper()
	deps.Redis, deps.Store = b.db.Client, b.store
	deps.Log = zerolog.New(b.logs).With().Str("component", "worker").Logger()
	w, err := worker.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
}

// fakeQARunner is the QA program on a fake LM of its own, whose calls time
// out after timeout.
func (b *bundle) fakeQARunner(t *testing.T, timeout time.Duration) *worker.ProgramRunner {
	t.Helper()
	lm, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	lc, err := lmclient.New(lmclient.Config{APIBase: lm.URL(), APIKey: "test", Timeout: timeout}, lmclient.Deps{Redis: b.db.Client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	return worker.NewProgramRunner(program.NewQA(), lc)
}
