package worker

import (
	"fmt"

	"github.com/rs/zerolog"
)

// asynqLogger sends asynq's own logs into zerolog.
type asynqLogger struct{ log zerolog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug().Msg(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info().Msg(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn().Msg(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.log.Error().Msg(fmt.Sprint(args...)) }

// Fatal is logged as an error: asynq calls it for conditions we prefer to
// surface through Start's error rather than exit the process from a library.
func (l asynqLogger) Fatal(args ...any) { l.log.Error().Bool("fatal", true).Msg(fmt.Sprint(args...)) }
