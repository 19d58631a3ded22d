package worker_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
)

// garbageMarker is in every answer fakelm's garbage fault gives; the answer
// also restates the question's words.
const garbageMarker = "I am not sure how to structure this"

// TestLogsHoldNoQuestionText: a parse failure's reason quotes the LM's
// answer, which restates the question. The record keeps it for the job's
// owner; the worker's log has the failure's code and the text's length and
// hash, and the text itself only with LOG_QUESTIONS (Config.LogQuestions).
func TestLogsHoldNoQuestionText(t *testing.T) {
	t.Parallel()
	for _, logQuestions := range []bool{false, true} {
		t.Run(fmt.Sprint("LogQuestions=", logQuestions), func(t *testing.T) {
			t.Parallel()
			b := setup(t, store.Config{})
			b.startWorker(t, worker.Config{LogQuestions: logQuestions})
			const word = "zanzibarquokka" // the question's word the LM restates
			ids := []string{
				b.submit(t, ask("Tell me about "+word+" [[fakelm:garbage]]", "o", jobs.Options{})),
				b.submit(t, ask("Stream "+word+" [[fakelm:garbage]]", "o", jobs.Options{Stream: true, NoCache: true})),
				b.submit(t, onQueue(jobs.QueueBatch, ask("Batch queue "+word+" [[fakelm:garbage]]", "o", jobs.Options{}))),
			}
			items := []jobs.BatchItem{{CustomID: "1", Inputs: jobs.Inputs{"question": "An item on " + word + " [[fakelm:garbage]]"}}}
			batch := createBatch(t, b.batches, "o", items, false)
			for _, id := range ids {
				j := b.waitEnd(t, id)
				if j.Status != jobs.StatusFailed || j.Error.Code != "parse_error" || !strings.Contains(j.Error.Message, garbageMarker) {
					t.Fatalf("job %s = %s %+v; want a parse_error that keeps the LM's answer", id, j.Status, j.Error)
				}
			}
			if bt := b.waitBatch(t, batch); bt.Counts.Failed != 1 {
				t.Fatalf("batch = %+v", bt.Counts)
			}
			logs := waitLogs(t, b, func(logs string) bool {
				// asynq's line on archiving a task comes after the handler's.
				return strings.Count(logs, "Retry exhausted for task") >= len(ids)+1
			})
			if n := strings.Count(logs, `"code":"parse_error"`); n != len(ids)+1 {
				t.Errorf("%d lines name the failure's code, want one per job and item:\n%s", n, logs)
			}
			if n := strings.Count(logs, `"lm_text_bytes":`); n != len(ids)+1 {
				t.Errorf("%d lines give the LM text's length, want one per job and item:\n%s", n, logs)
			}
			for _, text := range []string{garbageMarker, word} {
				if got := strings.Contains(logs, text); got != logQuestions {
					t.Errorf("LogQuestions=%v: the log holds %q: %v\n%s", logQuestions, text, got, logs)
				}
			}
		})
	}
}

// waitLogs polls the worker's log until cond holds (lines are written as
// asynq hands the result back, a moment after the record ends).
func waitLogs(t *testing.T, b *bundle, cond func(string) bool) string {
	t.Helper()
	var logs string
	testwait.Until(t, "the log lines", func() bool { logs = b.logs.String(); return cond(logs) })
	return logs
}

// TestCancelIsNotAWarning: cancelling a batch mid-run — items running,
// hundreds still queued, each of whose tasks is dropped when it comes up —
// and a running job logs no warning: a cancel is the client's choice.
func TestCancelIsNotAWarning(t *testing.T) {
	t.Parallel()
	const n, slots = 300, 4
	b := setup(t, store.Config{})
	b.startWorker(t, worker.Config{Concurrency: 2, BatchConcurrency: slots})
	ctx := t.Context()
	items := make([]jobs.BatchItem, n)
	for i := range items {
		items[i] = jobs.BatchItem{CustomID: fmt.Sprint(i), Inputs: jobs.Inputs{"question": fmt.Sprintf("Item %d [[fakelm:stall]]", i)}}
	}
	batch := createBatch(t, b.batches, "o", items, false)
	job := b.submit(t, ask("A job [[fakelm:stall]]", "o", jobs.Options{Stream: true}))
	insp := asynq.NewInspectorFromRedisClient(b.db.Client)
	testwait.Until(t, "items and the job to run", func() bool {
		q, err := insp.GetQueueInfo(jobs.QueueBatch)
		j, _ := b.store.Get(ctx, job)
		return err == nil && q.Active == slots && j != nil && j.Status == jobs.StatusRunning
	})
	if _, err := b.batches.Cancel(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Cancel(ctx, job); err != nil {
		t.Fatal(err)
	}
	if bt := b.waitBatch(t, batch); bt.Status != jobs.BatchCancelled {
		t.Fatalf("batch = %s %+v", bt.Status, bt.Counts)
	}
	// Every task has come up and been dropped.
	testwait.Until(t, "the queues to drain", func() bool {
		for _, name := range []string{jobs.QueueBatch, jobs.QueueInteractive} {
			q, err := insp.GetQueueInfo(name)
			if err != nil || q.Pending+q.Active+q.Retry+q.Scheduled > 0 {
				return false
			}
		}
		return true
	})
	var warnings []string
	for line := range strings.Lines(b.logs.String()) {
		if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) > 0 {
		t.Fatalf("cancelling a %d-item batch and a job logged %d warnings, want none; the first:\n%s", n, len(warnings), strings.Join(warnings[:min(5, len(warnings))], ""))
	}
}
