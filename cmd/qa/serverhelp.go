package main

import (
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
)

// The servers (`qa dev`, `qa api`, `qa worker`) are configured by the
// environment, not flags: their -h names the variables that matter most for
// each and points at `qa config` for every one, with its value and source.

// envHelp is one line of a server's -h: variables and what they do.
type envHelp struct{ vars, what string }

var (
	lmHelp = []envHelp{
		{"DSPY_MODEL", "the LM as provider/model, e.g. ollama_chat/llama3.2"},
		{"OPENAI_API_KEY, LM_API_KEY", "its key (each provider's own variable works too)"},
		{"LM_API_BASE", "any OpenAI-compatible server (vLLM, a proxy, …)"},
		{"PROGRAM_STATE_PATH", "a DSPy save_program=False state of the QA program"},
	}
	apiHelp = []envHelp{
		{"HOST, PORT", "where the API listens"},
		{"REDIS_URL", "the Redis shared with the workers (or REDIS_SENTINEL_ADDRS)"},
		{"API_KEYS", "clients' Bearer keys, name:key,… (or ALLOW_ANONYMOUS=true)"},
		{"ADMIN_API_KEYS", "keys for /metrics and the /monitoring/ dashboard"},
		{"RATE_LIMIT_RPS, TOKEN_BUDGET_PER_DAY", "limits per key"},
		{"QUEUE_MAX_PENDING", "beyond it, new work is refused with 503"},
		{"PROGRAMS_DIR, PROGRAMS_PUSH_ON_START", "program files pushed at start-up (only when set true)"},
	}
	workerHelp = append(append([]envHelp{
		{"REDIS_URL", "the Redis shared with the API (or REDIS_SENTINEL_ADDRS)"},
	}, lmHelp...),
		envHelp{"WORKER_CONCURRENCY, BATCH_CONCURRENCY", "jobs and batch items run at once by this process"},
		envHelp{"LM_RPM, LM_TPM", "a rate limit toward the LM shared by every worker"},
		envHelp{"WORKER_METRICS_PORT", "where /livez, /readyz and /metrics are served"},
	)
	devHelp = append(append([]envHelp{}, lmHelp...),
		envHelp{"HOST, PORT", "where the API listens"},
		envHelp{"REDIS_URL", "a real Redis; unset, an embedded in-memory one"},
		envHelp{"API_KEYS", "keys clients must send; unset, the API is open"},
		envHelp{"PROGRAMS_DIR", "program files (*.yaml) pushed at start-up"},
	)
)

// serverUsage sets fs's usage: the command line, what the server does, its
// variables, the `qa config` pointer, then its flags if it has any.
func serverUsage(fs *flag.FlagSet, w io.Writer, line, about string, vars []envHelp) {
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: %s\n\n%s\n\nThe variables that matter most here (also read from .env):\n", line, about)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, v := range vars {
			fmt.Fprintf(tw, "  %s\t%s\n", v.vars, v.what)
		}
		_ = tw.Flush() // w is a terminal or a buffer: nothing to report
		fmt.Fprintln(w, "\nEvery variable with its value, default and source: qa config")
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nflags:")
			fs.PrintDefaults()
		}
	}
}
