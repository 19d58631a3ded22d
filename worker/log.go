package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
)

// loggedQuestionBytes is how much of a question goes on a job's log lines
// when Config.LogQuestions allows question text.
const loggedQuestionBytes = 200

// withQuestion adds the question to a job's log context, clipped, when
// Config.LogQuestions allows it.
func (w *Worker) withQuestion(c zerolog.Context, question string) zerolog.Context {
	if !w.cfg.LogQuestions {
		return c
	}
	if len(question) > loggedQuestionBytes {
		question = strings.ToValidUTF8(question[:loggedQuestionBytes], "") + "…"
	}
	return c.Str("question", question)
}

// logReason adds a failed run's reason to a log line: its code, and its
// message unless that quotes LM text (a parse failure's answer restates the
// question), which only Config.LogQuestions lets in. Quoted text is
// described by its length and a short hash, to match the line with the
// record, which keeps the whole message for the job's owner.
func (w *Worker) logReason(e *zerolog.Event, v verdict) *zerolog.Event {
	if v.reason == nil {
		return e
	}
	e = e.Str("code", v.reason.Code)
	if v.quoted != "" {
		sum := sha256.Sum256([]byte(v.quoted))
		e = e.Int("lm_text_bytes", len(v.quoted)).Str("lm_text_sha256", hex.EncodeToString(sum[:6]))
	}
	if v.quoted == "" || w.cfg.LogQuestions {
		e = e.Str("reason", v.reason.Message)
	}
	return e
}

// asynqLogger sends asynq's own logs into zerolog.
type asynqLogger struct{ log zerolog.Logger }

// asynqRevoked starts the line asynq v0.26 logs at WARN for every task a
// handler returns asynq.RevokeTask for (processor.go, handleFailedMessage:
// Warnf("revoke task id=%s")). A revoke is our decision — a cancelled job, a
// task whose job had already ended — not a problem: cancelling a 300-item
// batch logged 300 such warnings. They go to debug.
// TestCancelIsNotAWarning fails if asynq changes the line.
const asynqRevoked = "revoke task id="

func (l asynqLogger) Debug(args ...any) { l.log.Debug().Msg(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info().Msg(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.log.Error().Msg(fmt.Sprint(args...)) }

func (l asynqLogger) Warn(args ...any) {
	msg := fmt.Sprint(args...)
	if strings.HasPrefix(msg, asynqRevoked) {
		l.log.Debug().Msg(msg)
		return
	}
	l.log.Warn().Msg(msg)
}

// Fatal is logged as an error: asynq calls it for conditions we prefer to
// surface through Start's error rather than exit the process from a library.
func (l asynqLogger) Fatal(args ...any) { l.log.Error().Bool("fatal", true).Msg(fmt.Sprint(args...)) }
