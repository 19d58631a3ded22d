package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// fakeLMShutdownTimeout bounds the graceful stop; stalled requests are
// released at once, so only answers being paced out can take this long.
const fakeLMShutdownTimeout = 5 * time.Second

// runFakeLM serves the fake OpenAI-compatible LM until ctx is done.
func runFakeLM(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa fakelm", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var cfg fakelm.Config
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8090", "listen address")
	fs.DurationVar(&cfg.TTFT, "ttft", 0, "time to first token")
	fs.Float64Var(&cfg.TokensPerSecond, "tps", 0, "tokens per second after the first (0 = instant)")
	fs.IntVar(&cfg.RPM, "rpm", 0, "requests per minute enforced with 429s (0 = unlimited)")
	fs.BoolVar(&cfg.RPMPerSecond, "rpm-per-second", false, "enforce -rpm as rpm/60 per second, as providers do, rather than over a sliding minute")
	fs.StringVar(&cfg.APIKey, "api-key", "", "require this bearer key (empty = accept any)")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: qa fakelm [flags]\n\nServes an OpenAI-compatible chat completions API at http://ADDR/v1 that answers\nin DSPy ChatAdapter (or JSON) format. Faults on demand: put a directive such as\n[[fakelm:429,retry_after=2s,times=1]] in the question (see the fakelm package docs).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	srv, err := fakelm.New(cfg)
	if err != nil {
		return fmt.Errorf("start fake LM: %w", err)
	}
	fmt.Fprintf(e.stdout, "fakelm listening on %s (set LM_API_BASE=%s)\n", srv.Addr(), srv.URL())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fakeLMShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("stop fake LM: %w", err)
	}
	return nil
}
