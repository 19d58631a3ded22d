package redistest

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// RefuseScripts is a go-redis hook that fails the Lua scripts (EVAL and
// EVALSHA) Match selects as a Redis that has gone away would (connection
// refused), before they reach the server; every other command goes through.
// It stands in for an outage that hits one step exactly, which killing the
// server cannot time.
type RefuseScripts struct {
	// Match sees the script's keys and arguments; true refuses this call.
	Match func(keys []string, args []any) bool
}

func (RefuseScripts) DialHook(next redis.DialHook) redis.DialHook { return next }

func (RefuseScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h RefuseScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if keys, args, ok := scriptCall(cmd); ok && h.Match(keys, args) {
			err := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// scriptCall splits EVAL/EVALSHA script numkeys key… arg… into its keys and
// arguments.
func scriptCall(cmd redis.Cmder) (keys []string, args []any, ok bool) {
	if name := strings.ToLower(cmd.Name()); name != "eval" && name != "evalsha" {
		return nil, nil, false
	}
	all := cmd.Args()
	if len(all) < 3 {
		return nil, nil, false
	}
	n, isInt := all[2].(int)
	if !isInt || n < 0 || 3+n > len(all) {
		return nil, nil, false
	}
	for _, k := range all[3 : 3+n] {
		s, _ := k.(string)
		keys = append(keys, s)
	}
	return keys, all[3+n:], true
}
