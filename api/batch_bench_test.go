package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/programstest"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/rs/zerolog"
)

// benchLines is the upload size the issue sets.
const benchLines = 50_000

// BenchmarkBatchIngest uploads 50,000 JSONL lines through the HTTP API and
// drains them with a real worker (the QA program on the instant fake LM),
// reporting lines/s accepted (upload to 202: parse, validate, store) and
// items/s drained (202 to completed: expansion and every item's run),
// beside the bare asynq enqueue rate on the same Redis in the same run: one
// asynq.Client.Enqueue loop, and 16 goroutines sharing one client.
func BenchmarkBatchIngest(b *testing.B) {
	db := redistest.New(b)
	ctx := context.Background()
	var body strings.Builder
	for i := range benchLines {
		fmt.Fprintf(&body, `{"custom_id":"row-%d","question":"What is item %d of the benchmark?"}`+"\n", i, i)
	}
	upload := body.String()

	lm, err := fakelm.New(fakelm.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer lm.Close()
	lc, err := lmclient.New(lmclient.Config{APIBase: lm.URL(), APIKey: "bench", Timeout: 30 * time.Second}, lmclient.Deps{Redis: db.Client})
	if err != nil {
		b.Fatal(err)
	}
	defer lc.Close()
	jobStore, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		b.Fatal(err)
	}
	bs, err := batches.NewStore(jobStore, batches.Config{})
	if err != nil {
		b.Fatal(err)
	}
	hctx, hcancel := context.WithCancel(ctx)
	hub := store.NewHub(hctx, db.Client, zerolog.Nop())
	go hub.Run(hctx)
	defer func() { _ = hub.Close(); hcancel() }()
	srv, err := api.New(api.Config{}, api.Deps{Redis: db.Client, Client: store.NewClient(db.Client, jobStore), Store: jobStore, Hub: hub, Batches: bs, Programs: programstest.New(b, db.Client, programs.Config{}), Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	defer srv.Shutdown(ctx)
	w, err := worker.New(worker.Config{Concurrency: 2, BatchConcurrency: 64, ShutdownTimeout: 5 * time.Second},
		worker.Deps{Redis: db.Client, Store: jobStore, Runner: worker.NewProgramRunner(program.NewQA(), lc), Batches: bs, Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer w.Shutdown()

	var accepted, drained, bare, bare16 time.Duration
	b.ResetTimer()
	for range b.N {
		bare += bareEnqueue(b, db, 1)
		bare16 += bareEnqueue(b, db, 16)

		start := time.Now()
		resp, err := http.Post(ts.URL+"/v1/batches", "application/x-ndjson", strings.NewReader(upload))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("upload: %d", resp.StatusCode)
		}
		accepted += time.Since(start)
		id := strings.TrimPrefix(resp.Header.Get("Location"), "/v1/batches/")
		start = time.Now()
		testwait.Until(b, "the batch to end", func() bool {
			bt, err := bs.Get(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if bt.Status.Terminal() && bt.Counts.Completed != benchLines {
				b.Fatalf("batch ended %+v", bt)
			}
			return bt.Status.Terminal()
		})
		drained += time.Since(start)
	}
	b.StopTimer()
	n := float64(b.N * benchLines)
	b.ReportMetric(n/accepted.Seconds(), "lines/s_accepted")
	b.ReportMetric(n/drained.Seconds(), "items/s_drained")
	b.ReportMetric(n/bare.Seconds(), "bare_enqueue/s")
	b.ReportMetric(n/bare16.Seconds(), "bare_enqueue_16/s")
}

// bareEnqueue enqueues benchLines small tasks with asynq.Client.Enqueue from
// workers goroutines into a queue nobody serves, then deletes the queue.
func bareEnqueue(b *testing.B, db *redistest.DB, workers int) time.Duration {
	b.Helper()
	client := asynq.NewClientFromRedisClient(db.Client)
	queue := fmt.Sprintf("bench_bare_%d", workers)
	payload := []byte(`{"batch":{"id":"batch_0123456789abcdef0123456789abcdef","index":12345,"custom_id":"row-12345"}}`)
	var wg sync.WaitGroup
	next := make(chan int)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, err := client.Enqueue(asynq.NewTask("bench", payload), asynq.Queue(queue), asynq.TaskID(fmt.Sprint(i))); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range benchLines {
		next <- i
	}
	close(next)
	wg.Wait()
	took := time.Since(start)
	if err := asynq.NewInspectorFromRedisClient(db.Client).DeleteQueue(queue, true); err != nil {
		b.Fatal(err)
	}
	return took
}
