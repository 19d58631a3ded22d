package redistest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// CommandLog is a go-redis hook that records the commands a client runs,
// for tests that count a code path's commands. Each is its name and first
// key ("hgetall qa:job:…"); a script call is "evalsha" and its first key,
// whichever of EVAL and EVALSHA ran it (EVAL is only a server's first run
// of a script). A command is recorded as it is sent, so what it does (a
// job ending, which the test waits for) never shows before it is in the
// log. Pub/sub commands go around hooks and are never recorded.
type CommandLog struct {
	// Keep, when set, picks the commands recorded by name and first key.
	Keep func(name, key string) bool
	// ScriptOps adds a script call's first argument after its key: the op
	// of a script that does several things, as the store's record script.
	ScriptOps bool

	mu    sync.Mutex
	cmds  []string
	after func(redis.Cmder)
}

// DialHook leaves dialing alone.
func (*CommandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook records each command as it is sent.
func (l *CommandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.add(cmd)
		err := next(ctx, cmd)
		l.mu.Lock()
		after := l.after
		l.mu.Unlock()
		if after != nil {
			after(cmd)
		}
		return err
	}
}

// ProcessPipelineHook records a pipeline's commands as they are sent.
func (l *CommandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			l.add(cmd)
		}
		return next(ctx, cmds)
	}
}

// SetAfter has f called after each command outside a pipeline has run;
// nil stops it.
func (l *CommandLog) SetAfter(f func(redis.Cmder)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.after = f
}

// Take returns the commands recorded so far, with id elided as "<id>",
// and starts afresh.
func (l *CommandLog) Take(id string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, len(l.cmds))
	for i, c := range l.cmds {
		out[i] = strings.ReplaceAll(c, id, "<id>")
	}
	l.cmds = nil
	return out
}

func (l *CommandLog) add(cmd redis.Cmder) {
	name, key, op := cmd.Name(), "", ""
	if keys, args, ok := scriptCall(cmd); ok {
		name = "evalsha"
		if len(keys) > 0 {
			key = keys[0]
		}
		if l.ScriptOps && len(args) > 0 {
			op = " " + fmt.Sprint(args[0])
		}
	} else if args := cmd.Args(); len(args) > 1 {
		key = fmt.Sprint(args[1])
	}
	if l.Keep != nil && !l.Keep(name, key) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cmds = append(l.cmds, name+" "+key+op)
}
