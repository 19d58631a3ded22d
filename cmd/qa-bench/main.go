// Command qa-bench measures qaqueue from outside: it starts a redis-server, a
// fake LM and `qa api` / `qa worker` processes, runs each scenario and prints
// every figure beside its same-run baseline and its goal (BENCHMARKS.md).
//
// It is a command of its own, apart from qa, so that the service's binary
// and images do not ship the bench kit (internal/benchkit).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/qaqueue/qaqueue/internal/benchkit/samework"
)

// env is where the bench writes: the report on stdout, progress on stderr.
type env struct {
	stdout io.Writer
	stderr io.Writer
}

// sameworkCommand runs one process of the same-work baseline
// (internal/benchkit/samework): the bench starts its own executable with it,
// so the baseline's CPU is measured as a process, as qa's is. Not listed in
// the usage: it is the bench's, not the user's.
const sameworkCommand = "samework"

// errUsage marks an error already explained by a usage message.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, env{stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
}

// run is qa-bench with args; it returns the exit status: 2 for a usage
// error, 130 when interrupted (the report so far is printed), as qa does.
func run(ctx context.Context, e env, args []string) int {
	var err error
	if len(args) > 0 && args[0] == sameworkCommand {
		err = samework.Main(ctx, args[1:], e.stderr) // a process the bench started
	} else {
		err = runBench(ctx, e, args)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		fmt.Fprintln(e.stderr, "qa-bench: interrupted")
		return 130
	}
	fmt.Fprintf(e.stderr, "qa-bench: %v\n", err)
	return 1
}
