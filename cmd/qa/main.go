// Command qa is the one binary of qaqueue: the API, the workers, the embedded
// dev stack, the fake LM, prompt debugging tools and a small client.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"

	"github.com/gin-gonic/gin"
)

// env is what a subcommand may touch of the outside world; passing it in keeps
// subcommands testable without globals.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

type command struct {
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"prompt": {"print the exact LM messages for an input (a program file's stage with --program)", runPrompt},
		"parse":  {"parse an LM completion read on stdin into typed output fields (--program: a stage's)", runParse},
		"fakelm": {"run the fake OpenAI-compatible LM server", runFakeLM},
		"config": {"print the effective configuration, secrets redacted", runConfig},
		"worker": {"run a worker process (interactive and batch queues)", runWorker},
		"api":    {"run the HTTP API", runServeAPI},
		"dev":    {"run everything in one process: embedded Redis, workers, API, demo LM", runDev},
		"healthcheck": {
			"GET the local /readyz (or /livez): the containers' HEALTHCHECK", runHealthcheck},
		"submit":   {"submit a question to QA_URL and print the answer", runSubmit},
		"watch":    {"follow a job's or a batch's events on QA_URL", runWatch},
		"batch":    {"upload a JSONL file as a batch, show progress, write the results", runBatch},
		"results":  {"wait for an existing batch and write its results", runResults},
		"version":  {"print the version and the Go it was built with", runVersion},
		"cache":    {"say where the LM cache lives; qa cache clear empties it", runCache},
		"programs": {"the program registry on QA_URL: push FILE, list, show NAME, alias NAME@ALIAS VERSION", runPrograms},
	}
}

// errUsage marks an error already explained by a usage message.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv(gin.EnvGinMode) == "" {
		gin.SetMode(gin.ReleaseMode) // gin's debug route dump is noise in our logs
	}
	e := env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(ctx, e, os.Args[1:]))
}

func run(ctx context.Context, e env, args []string) int {
	cmds := commands()
	if len(args) == 0 {
		usage(e.stderr, cmds)
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help":
		if len(args) > 1 && args[0] == "help" {
			// `qa help CMD` is `qa CMD -h`.
			return run(ctx, e, []string{args[1], "-h"})
		}
		usage(e.stdout, cmds) // asked for: not an error
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "qa: unknown command %q\n\n", args[0])
		usage(e.stderr, cmds)
		return 2
	}
	if err := c.run(ctx, e, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = interrupted{} // Ctrl-C, not a failure to explain
		}
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(e.stderr, "qa %s: %v\n", args[0], err)
		}
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

// interrupted is Ctrl-C (or SIGTERM) ending a command; msg says what goes
// on without it. The exit status is 130, as a shell reports SIGINT.
type interrupted struct{ msg string }

func (e interrupted) Error() string {
	if e.msg == "" {
		return "interrupted"
	}
	return "interrupted: " + e.msg
}

// ExitCode is the status run returns.
func (interrupted) ExitCode() int { return 130 }

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: qa <command> [flags]\n\ncommands:")
	names := slices.Sorted(maps.Keys(cmds))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, n := range names {
		fmt.Fprintf(tw, "  %s\t%s\n", n, cmds[n].summary)
	}
	_ = tw.Flush() // w is a terminal or a buffer: nothing to report
	fmt.Fprintln(w, "\nRun 'qa <command> -h' (or 'qa help <command>') for a command's flags.")
}
