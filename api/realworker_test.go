package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/worker"
)

// End-to-end with the real worker (package worker) behind the API: only the
// program is scripted, through worker.Runner.

// scriptedRunner scripts the QA program: it is given the question of the
// inputs.
type scriptedRunner func(ctx context.Context, question string, opts worker.RunOptions) (*worker.RunResult, error)

func (r scriptedRunner) Run(ctx context.Context, in jobs.Inputs, opts worker.RunOptions) (*worker.RunResult, error) {
	q, _ := in["question"].(string)
	return r(ctx, q, opts)
}
func (scriptedRunner) Model() string       { return "fake/model" }
func (scriptedRunner) StateSHA256() string { return "0123" }

// startRealWorker runs a worker.Worker on the test's Redis.
func (b *bundle) startRealWorker(t *testing.T, run scriptedRunner) {
	t.Helper()
	b.runWorker(t, worker.Config{
		Concurrency: 8, BatchConcurrency: 2, ShutdownTimeout: 2 * time.Second, ID: "e2e",
	}, worker.Deps{Runner: run})
}

// streamingRunner streams the answer word by word (and some reasoning, which
// /predict/stream must not relay) and returns the full outputs.
func streamingRunner(ctx context.Context, q string, opts worker.RunOptions) (*worker.RunResult, error) {
	var words []string
	for i := 0; i < 200; i++ {
		words = append(words, fmt.Sprintf("w%d ", i))
	}
	answer := "Answer to " + q + ": " + strings.Join(words, "")
	if opts.OnChunk != nil {
		if err := opts.OnChunk("reasoning", "thinking..."); err != nil {
			return nil, err
		}
		for _, piece := range append([]string{"Answer to ", q, ": "}, words...) {
			if err := opts.OnChunk("answer", piece); err != nil {
				return nil, err
			}
		}
	}
	return &worker.RunResult{
		Outputs: jobs.Outputs{{Name: "reasoning", Value: "thinking..."}, {Name: "answer", Value: answer}, {Name: "key_concepts", Value: "k"}, {Name: "question_type", Value: "factual"}},
		Usage:   json.RawMessage(testUsage), LMCalls: 1,
	}, nil
}

func TestRealWorkerStreamConcatenatesToTheAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startRealWorker(t, streamingRunner)
	frames := seedFrames(t, b.openSSE(t, "POST", "/predict/stream", map[string]any{"question": "q"}, nil))
	if len(frames) < 3 || frames[len(frames)-1] != "[DONE]" {
		t.Fatalf("frames = %q", frames)
	}
	var tokens strings.Builder
	for _, f := range frames[:len(frames)-2] {
		tok := decode[seedFrame](t, []byte(f))
		if tok.Type != "token" || tok.Field != "answer" {
			t.Fatalf("frame %s", f)
		}
		tokens.WriteString(tok.Content)
	}
	end := decode[seedFrame](t, []byte(frames[len(frames)-2]))
	if end.Type != "complete" || !strings.HasPrefix(end.Answer, "Answer to q: w0 w1 ") || tokens.String() != end.Answer {
		t.Fatalf("tokens %q\ncomplete %s", tokens.String(), frames[len(frames)-2])
	}
}

func TestRealWorkerPredictAndJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startRealWorker(t, streamingRunner)
	resp, body := b.do(t, "POST", "/predict", map[string]any{"question": "p"}, nil)
	got := decode[map[string]any](t, body)
	if resp.StatusCode != 200 || !strings.HasPrefix(got["answer"].(string), "Answer to p: ") || got["key_concepts"] != "k" || got["question_type"] != "factual" {
		t.Fatalf("predict: %d %s", resp.StatusCode, body)
	}
	id := b.submit(t, "j")
	s := b.openSSE(t, "GET", eventsPath(id), nil, nil)
	resp, body = b.do(t, "GET", "/v1/jobs/"+id+"?wait=20s", nil, nil)
	j := decode[jobBody](t, body)
	if resp.StatusCode != 200 || j.Status != "completed" || j.Attempts != 1 || j.Result.Provenance.Model != "fake/model" ||
		j.Result.Provenance.Attempts != 1 || j.Result.Provenance.StateSHA256 != "0123" {
		t.Fatalf("job: %s", body)
	}
	frames := s.rest(t)
	if len(frames) < 4 || frames[0].Event != "queued" || frames[1].Event != "started" || frames[len(frames)-1].Event != "completed" {
		t.Fatalf("events: %+v", frames)
	}
	// Token events carry both fields; the answer's concatenate to the answer.
	var answer strings.Builder
	for _, f := range frames[2 : len(frames)-1] {
		var d struct{ Field, Content string }
		if f.Event != "token" || json.Unmarshal([]byte(f.Data), &d) != nil {
			t.Fatalf("frame %+v", f)
		}
		if d.Field == "answer" {
			answer.WriteString(d.Content)
		}
	}
	if answer.String() != j.Result.Answer("answer") {
		t.Errorf("answer tokens %q, answer %q", answer.String(), j.Result.Answer("answer"))
	}
}

func TestRealWorkerClientGoneCancelsTheRun(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	stopped := make(chan error, 1)
	b.startRealWorker(t, func(ctx context.Context, _ string, _ worker.RunOptions) (*worker.RunResult, error) {
		<-ctx.Done()
		stopped <- context.Cause(ctx)
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", b.url+"/predict", strings.NewReader(`{"question":"never mind"}`))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := b.http.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	id := b.runningJob(t)
	cancel()
	<-done
	if err := <-stopped; err == nil {
		t.Fatal("the run's context ended without a cause")
	}
	testwait.Until(t, "the job to be cancelled", func() bool { return b.jobStatus(t, id) == "cancelled" })
}
