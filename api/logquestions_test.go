package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/worker"
)

// TestLogsHoldNoLMText extends TestLogsHoldNoSecrets to the parse-failure
// path, end to end: the API and the real worker, running the QA program on
// the fake LM, which answers garbage restating the question. The failure's
// reason quotes that answer; /predict gives it to the client, and neither
// the API's log nor the worker's holds it — unless LOG_QUESTIONS is true.
func TestLogsHoldNoLMText(t *testing.T) {
	t.Parallel()
	for _, logQuestions := range []bool{false, true} {
		t.Run(fmt.Sprint("LOG_QUESTIONS=", logQuestions), func(t *testing.T) {
			t.Parallel()
			b := setup(t, options{api: api.Config{LogQuestions: logQuestions}})
			b.startProgramWorker(t, worker.Config{LogQuestions: logQuestions})
			const word = "zanzibarquokka" // a word of the question the LM restates
			const garbage = "I am not sure how to structure this"
			for _, path := range []string{"/predict", "/predict/stream"} {
				_, body := b.do(t, "POST", path, map[string]any{"question": "Tell me about " + word + " on " + path + " [[fakelm:garbage]]"}, nil)
				if !strings.Contains(string(body), garbage) {
					t.Fatalf("%s: the client should get the LM's answer in the reason: %s", path, body)
				}
			}
			var logs string
			testwait.Until(t, "the worker's failure lines", func() bool {
				logs = b.logs.String()
				return strings.Count(logs, `"code":"parse_error"`) >= 2
			})
			for _, text := range []string{garbage, word} {
				if got := strings.Contains(logs, text); got != logQuestions {
					t.Errorf("LOG_QUESTIONS=%v: the log holds %q: %v\n%s", logQuestions, text, got, logs)
				}
			}
		})
	}
}

// startProgramWorker runs the real worker with the QA program on the fake
// LM, logging into the API's log.
func (b *bundle) startProgramWorker(t *testing.T, cfg worker.Config) {
	t.Helper()
	run := b.fakeQARunner(t, 10*time.Second)
	cfg.BatchConcurrency, cfg.ShutdownTimeout = -1, 2*time.Second
	b.runWorker(t, cfg, worker.Deps{Runner: run})
}
