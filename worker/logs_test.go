package worker_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/jobs"
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
			b := setup(t, jobs.Config{})
			b.startWorker(t, worker.Config{LogQuestions: logQuestions})
			const word = "zanzibarquokka" // the question's word the LM restates
			ids := []string{
				b.submit(t, jobs.SubmitRequest{Question: "Tell me about " + word + " [[fakelm:garbage]]", Owner: "o"}),
				b.submit(t, jobs.SubmitRequest{Question: "Stream " + word + " [[fakelm:garbage]]", Owner: "o", Stream: true, NoCache: true}),
				b.submit(t, jobs.SubmitRequest{Question: "Batch queue " + word + " [[fakelm:garbage]]", Owner: "o", Queue: jobs.QueueBatch}),
			}
			items := []jobs.BatchItem{{CustomID: "1", Question: "An item on " + word + " [[fakelm:garbage]]"}}
			c, err := b.batches.Create(t.Context(), jobs.CreateRequest{Owner: "o", Items: items})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				j := b.waitEnd(t, id)
				if j.Status != jobs.StatusFailed || j.Error.Code != "parse_error" || !strings.Contains(j.Error.Message, garbageMarker) {
					t.Fatalf("job %s = %s %+v; want a parse_error that keeps the LM's answer", id, j.Status, j.Error)
				}
			}
			if bt := b.waitBatch(t, c.Batch.ID); bt.Counts.Failed != 1 {
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
	eventually(t, "the log lines", func() bool { logs = b.logs.String(); return cond(logs) })
	return logs
}
