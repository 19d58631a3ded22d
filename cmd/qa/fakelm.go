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
	batchFlags(fs, &cfg.Batch)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: qa fakelm [flags]\n\nServes an OpenAI-compatible chat completions API at http://ADDR/v1 that answers\nin DSPy ChatAdapter (or JSON) format. Faults on demand: put a directive such as\n[[fakelm:429,retry_after=2s,times=1]] in the question (see the fakelm package docs).\nIt also serves OpenAI's Files and Batches API (/v1/files, /v1/batches); the\n-batch-* and -files-* flags shape it.\n\nflags:")
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

// batchFlags binds the fake's Files and Batches API settings; 0 keeps a
// setting's default (OpenAI's limits, an instant turnaround, no faults).
func batchFlags(fs *flag.FlagSet, c *fakelm.BatchConfig) {
	fs.DurationVar(&c.Validating, "batch-validating", 0, "how long a batch validates (each poll moves it at most one phase)")
	fs.DurationVar(&c.InProgress, "batch-in-progress", 0, "how long a batch answers its lines")
	fs.DurationVar(&c.Finalizing, "batch-finalizing", 0, "how long a batch finalizes")
	fs.DurationVar(&c.Window, "batch-window", 0, "a batch's completion window: it expires unfinished after this (0 = 24h)")
	fs.IntVar(&c.StallAfter, "batch-stall-after", 0, "each batch answers at most N lines, then waits to be cancelled or to expire (0 = no stall)")
	fs.IntVar(&c.FailEvery, "batch-fail-every", 0, "fail every Nth line of a batch with -batch-fail-status (0 = none)")
	fs.IntVar(&c.FailStatus, "batch-fail-status", 0, "the status of a -batch-fail-every line (0 = 500)")
	fs.IntVar(&c.MalformedEvery, "batch-malformed-every", 0, "write every Nth output line cut short (0 = none)")
	fs.Int64Var(&c.TokenLimit, "batch-token-limit", 0, "enqueued prompt tokens per model over batches in progress; a batch past it fails with token_limit_exceeded (0 = unlimited)")
	fs.IntVar(&c.MaxRequests, "batch-max-requests", 0, "most lines in a batch (0 = 50000)")
	fs.IntVar(&c.MaxBatches, "batch-max", 0, "most batches kept, the oldest finished dropped first (0 = 10000)")
	fs.Int64Var(&c.MaxFileBytes, "files-max-bytes", 0, "largest upload in bytes (0 = 200 MiB)")
	fs.Int64Var(&c.MaxStoredBytes, "files-max-stored-bytes", 0, "most bytes of uploads kept (0 = 1 GiB)")
	fs.IntVar(&c.MaxFiles, "files-max", 0, "most uploads kept (0 = 10000)")
	fs.IntVar(&c.OutageRequests, "batch-outage", 0, "the first N requests to /v1/files and /v1/batches fail with -batch-outage-status")
	fs.IntVar(&c.OutageStatus, "batch-outage-status", 0, "an outage's status (0 = 503)")
	fs.DurationVar(&c.OutageRetryAfter, "batch-outage-retry-after", 0, "an outage's Retry-After (0 = 1s)")
}
