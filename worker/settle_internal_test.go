package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
)

// recordingSink records the writes settle makes; each returns err.
type recordingSink struct {
	err   error
	calls []string
}

func (s *recordingSink) write(call string) error {
	s.calls = append(s.calls, call)
	return s.err
}

func (s *recordingSink) Complete(_ context.Context, r *jobs.Result, tokens int64) (json.RawMessage, error) {
	return json.RawMessage(`{}`), s.write(fmt.Sprintf("complete %s tokens=%d usage=%s", r.Answer("answer"), tokens, r.Usage))
}
func (s *recordingSink) Fail(_ context.Context, reason *jobs.Error) error {
	return s.write("fail " + reason.Code)
}
func (s *recordingSink) Retry(_ context.Context, reason *jobs.Error, delay time.Duration) error {
	return s.write(fmt.Sprintf("retry %s %v", reason.Code, delay))
}
func (s *recordingSink) Defer(_ context.Context, reason *jobs.Error, delay time.Duration) error {
	return s.write(fmt.Sprintf("defer %s %v", reason.Code, delay))
}
func (s *recordingSink) Cancelled(context.Context) error { return s.write("cancelled") }

// modelRunner names a model and a state; settle never runs it.
type modelRunner struct{}

func (modelRunner) Run(context.Context, jobs.Inputs, RunOptions) (*RunResult, error) {
	return nil, errors.New("settle ran the program")
}
func (modelRunner) Model() string       { return "fake/model" }
func (modelRunner) StateSHA256() string { return "ab12" }

// TestSettle: each verdict becomes its write, what asynq does with the task
// (asynq reads SkipRetry, RevokeTask and a delay from the error), the
// outcome metric and one log line, for a job and (quieter) a batch item.
func TestSettle(t *testing.T) {
	t.Parallel()
	lmErr := &jobs.Error{Code: "lm_error", Message: "LM returned 503"}
	done := &RunResult{Outputs: jobs.Outputs{{Name: "answer", Value: "42"}}, Usage: json.RawMessage(`{"m":{"total_tokens":7}}`), Tokens: 7, LMCalls: 1}
	boom := errors.New("boom") // a write that failed for good (not an outage)

	// returns is what asynq is told: nil, a revoke, a skip-retry, a delay
	// (counted or not), a put-back asynq handles itself, or a write error.
	type returns string
	kindOf := func(err error) returns {
		var de *delayedError
		switch {
		case err == nil:
			return "nil"
		case errors.Is(err, asynq.RevokeTask):
			return "revoke"
		case errors.Is(err, asynq.SkipRetry) && errors.As(err, new(handled)):
			return "skip retry"
		case errors.As(err, &de):
			return returns(fmt.Sprintf("again in %v, counted %v", de.delay, de.counted))
		case errors.As(err, new(handled)):
			return "put back"
		}
		return returns("error: " + err.Error())
	}
	for _, c := range []struct {
		name     string
		v        verdict
		writeErr error
		calls    []string
		returns  returns
		outcome  string // "" for none
		level    string // the one line's level, "" for none
		message  string
	}{
		{name: "completed", v: verdict{action: completed, run: done, took: time.Second},
			calls: []string{"complete 42 tokens=7 usage={\"m\":{\"total_tokens\":7}}"}, returns: "nil",
			outcome: "completed", level: "info", message: "completed"},
		{name: "completed, ended meanwhile", v: verdict{action: completed, run: done}, writeErr: store.ErrTerminal,
			calls: []string{"complete 42 tokens=7 usage={\"m\":{\"total_tokens\":7}}"}, returns: "revoke",
			outcome: "cancelled", level: "info", message: "stopped: cancelled, or a newer attempt runs it"},
		{name: "completed, not recorded", v: verdict{action: completed, run: done}, writeErr: boom,
			calls: []string{"complete 42 tokens=7 usage={\"m\":{\"total_tokens\":7}}"}, returns: "error: record result: boom"},
		{name: "failed", v: verdict{action: failNow, reason: lmErr},
			calls: []string{"fail lm_error"}, returns: "skip retry", outcome: "failed", level: "warn", message: "failed"},
		{name: "failed, ended meanwhile", v: verdict{action: failNow, reason: lmErr}, writeErr: batches.ErrEnded,
			calls: []string{"fail lm_error"}, returns: "skip retry", outcome: "failed", level: "warn", message: "failed"},
		{name: "completed, stale", v: verdict{action: completed, run: done}, writeErr: store.ErrStale,
			calls: []string{"complete 42 tokens=7 usage={\"m\":{\"total_tokens\":7}}"}, returns: "revoke",
			outcome: "cancelled", level: "info", message: "stopped: cancelled, or a newer attempt runs it"},
		// A newer attempt runs the job and ends it: this one failed nothing.
		{name: "failed, stale", v: verdict{action: failNow, reason: lmErr}, writeErr: store.ErrStale,
			calls: []string{"fail lm_error"}, returns: "revoke",
			outcome: "cancelled", level: "info", message: "stopped: cancelled, or a newer attempt runs it"},
		{name: "failed, not recorded", v: verdict{action: failNow, reason: lmErr}, writeErr: boom,
			calls: []string{"fail lm_error"}, returns: "error: record failure: boom"},
		{name: "retry", v: verdict{action: retryLater, delay: 2 * time.Second, reason: lmErr},
			calls: []string{"retry lm_error 2s"}, returns: "again in 2s, counted true",
			outcome: "retried", level: "info", message: "will run again"},
		{name: "retry, not recorded", v: verdict{action: retryLater, delay: 2 * time.Second, reason: lmErr}, writeErr: boom,
			calls: []string{"retry lm_error 2s"}, returns: "again in 2s, counted true",
			outcome: "retried", level: "info", message: "will run again"},
		{name: "retry, stale", v: verdict{action: retryLater, delay: time.Second, reason: lmErr}, writeErr: store.ErrStale,
			calls: []string{"retry lm_error 1s"}, returns: "revoke",
			outcome: "cancelled", level: "info", message: "stopped: cancelled, or a newer attempt runs it"},
		{name: "deferred", v: verdict{action: deferLater, delay: 42 * time.Second, reason: &jobs.Error{Code: "rate_limited"}},
			calls: []string{"defer rate_limited 42s"}, returns: "again in 42s, counted false",
			outcome: "deferred", level: "info", message: "will run again"},
		{name: "requeued", v: verdict{action: requeued, reason: &jobs.Error{Code: "worker_stopped", Message: "stopping"}},
			calls: []string{"defer worker_stopped 0s"}, returns: "put back",
			outcome: "requeued", level: "info", message: "put back: worker shutting down"},
		{name: "requeued, not recorded", v: verdict{action: requeued, reason: &jobs.Error{Code: "worker_stopped", Message: "stopping"}},
			writeErr: boom, calls: []string{"defer worker_stopped 0s"}, returns: "put back",
			outcome: "requeued", level: "warn", message: "put back: worker shutting down"},
		{name: "cancelled", v: verdict{action: revoke},
			calls: []string{"cancelled"}, returns: "revoke",
			outcome: "cancelled", level: "info", message: "stopped: cancelled, or a newer attempt runs it"},
		{name: "cancel not recorded", v: verdict{action: revoke}, writeErr: boom,
			calls: []string{"cancelled"}, returns: "error: record cancel: boom"},
		{name: "over budget", v: verdict{action: refused}, returns: "revoke",
			outcome: "failed", level: "info", message: "not run: its owner's daily token budget is spent"},
		{name: "dropped", v: verdict{action: dropped}, returns: "revoke",
			outcome: "dropped", level: "debug", message: "not run: it has ended or is gone"},
	} {
		for _, k := range []kind{{name: "job"}, {name: "batch item", quiet: true}} {
			t.Run(c.name+"/"+k.name, func(t *testing.T) {
				t.Parallel()
				var logs strings.Builder
				reg := prometheus.NewRegistry()
				w := &Worker{deps: Deps{Runner: modelRunner{}, Metrics: NewMetrics(reg)}}
				s := &recordingSink{err: c.writeErr}
				a := &attempt{kind: k, queue: jobs.QueueInteractive, log: zerolog.New(&logs), sink: s}
				if c.v.action == dropped || c.v.action == refused {
					a.sink = nil // not started: nothing to write through
				}
				got := w.settle(context.Background(), asynq.NewTask(jobs.TaskTypePredict, nil), a, c.v)
				if kindOf(got) != c.returns {
					t.Errorf("returns %q (%v), want %q", kindOf(got), got, c.returns)
				}
				if !slices.Equal(s.calls, c.calls) {
					t.Errorf("writes %q, want %q", s.calls, c.calls)
				}
				for _, outcome := range []string{"completed", "failed", "retried", "deferred", "cancelled", "requeued", "dropped"} {
					want := 0.0
					if outcome == c.outcome {
						want = 1
					}
					var m dto.Metric
					if err := w.deps.Metrics.outcomes.WithLabelValues(jobs.QueueInteractive, outcome).Write(&m); err != nil {
						t.Fatal(err)
					}
					if n := m.GetCounter().GetValue(); n != want {
						t.Errorf("outcome %s counted %v, want %v", outcome, n, want)
					}
				}
				var lines []map[string]any
				for l := range strings.Lines(logs.String()) {
					var m map[string]any
					if err := json.Unmarshal([]byte(l), &m); err != nil {
						t.Fatal(err)
					}
					lines = append(lines, m)
				}
				if c.level == "" {
					if len(lines) > 0 {
						t.Errorf("logged %v, want nothing (asynq's error handler logs the write error)", lines)
					}
					return
				}
				level := c.level
				if k.quiet && level == "info" && c.outcome != "retried" && c.outcome != "requeued" {
					level = "debug" // an item's routine end
				}
				if len(lines) != 1 || lines[0]["level"] != level || lines[0]["message"] != k.name+" "+c.message {
					t.Errorf("logged %v, want one %s line %q", lines, level, k.name+" "+c.message)
				}
			})
		}
	}
}
