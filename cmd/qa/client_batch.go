package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// batchProgressData is the data of a batch's progress and terminal events.
type batchProgressData struct {
	Status        string `json:"status"`
	RequestCounts struct {
		Total     int `json:"total"`
		Completed int `json:"completed"`
		Failed    int `json:"failed"`
		Cancelled int `json:"cancelled"`
	} `json:"request_counts"`
	// Provider is a provider-mode batch's round at the provider, once it
	// has begun.
	Provider *providerData `json:"provider"`
}

// providerData is the part of a provider-mode batch's provider object the
// progress line shows.
type providerData struct {
	Phase  string `json:"phase"`
	Round  int    `json:"round"`
	Stage  string `json:"stage"`
	Counts struct {
		Total     int `json:"total"`
		Completed int `json:"completed"`
		Failed    int `json:"failed"`
		Cached    int `json:"cached"`
	} `json:"request_counts"`
}

// batchCost is a provider-mode batch's cost, in micro-dollars (nil: the
// model is not in the API's LM_PRICES).
type batchCost struct {
	Model         string `json:"model"`
	Micros        *int64 `json:"micro_usd"`
	LiveMicros    *int64 `json:"live_micro_usd"`
	ProviderCalls int    `json:"provider_calls"`
	LiveCalls     int    `json:"live_calls"`
}

// costLine says what a batch cost, in dollars.
func costLine(c batchCost) string {
	calls := fmt.Sprintf("%d provider calls, %d live", c.ProviderCalls, c.LiveCalls)
	if c.Micros == nil {
		return fmt.Sprintf("cost: unknown (%s is not in LM_PRICES): %s", c.Model, calls)
	}
	live := ""
	if c.LiveMicros != nil {
		live = " (" + dollars(*c.LiveMicros) + " live)"
	}
	return fmt.Sprintf("cost: %s%s for %s: %s", dollars(*c.Micros), live, c.Model, calls)
}

// dollars writes micro-dollars as dollars, to the micro-dollar.
func dollars(micros int64) string {
	return fmt.Sprintf("$%d.%06d", micros/1_000_000, micros%1_000_000)
}

// errItemsFailed makes `qa batch` exit 1 when any item failed.
type errItemsFailed struct{ failed, total int }

func (e errItemsFailed) Error() string {
	return fmt.Sprintf("%d of %d items failed", e.failed, e.total)
}

// runBatch is `qa batch FILE.jsonl [-o results.jsonl]`: uploads the file,
// shows a progress bar from the batch's events, then writes the results.
func runBatch(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa batch", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	out := fs.String("o", "", "write the results here (default: standard output)")
	noWait := fs.Bool("no-wait", false, "print the batch id and return once uploaded")
	provider := fs.Bool("provider", false, "send the items through the LM provider's batch API: about half the price, up to 24 h a program stage")
	cf := addClientFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: qa batch [flags] FILE.jsonl\n\nUploads a JSONL file (or a JSON array, FILE.json) of {\"custom_id\"?, \"question\"}\nto QA_URL, shows the progress, and writes the results as JSONL in input\norder. Exits 1 if any item failed. Ctrl-C leaves the batch running:\n`qa results BATCH_ID` fetches it later. With --provider the progress shows\nthe provider's phase, and the end what the batch cost.\n\nflags:")
		fs.PrintDefaults()
	}
	arg, err := oneArg(fs, args)
	if err != nil {
		return err
	}
	c, err := newAPIClient(e, cf)
	if err != nil {
		return err
	}
	f, err := os.Open(arg)
	if err != nil {
		return fmt.Errorf("open upload: %w", err)
	}
	defer f.Close()
	ct := "application/x-ndjson"
	if strings.HasSuffix(arg, ".json") {
		ct = "application/json"
	}
	path := "/v1/batches"
	if *provider {
		path += "?mode=provider"
	}
	resp, err := c.do(ctx, "POST", path, ct, f, nil)
	if err != nil {
		if ctx.Err() != nil {
			return interrupted{"during the upload, before a batch id came back"}
		}
		return fmt.Errorf("upload: %w", err)
	}
	var created struct {
		ID string `json:"id"`
	}
	err = decodeJSON(resp.Body, &created)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("upload: read the answer: %w", err)
	}
	if *noWait {
		fmt.Fprintln(e.stdout, created.ID)
		return nil
	}
	fmt.Fprintln(e.stderr, "batch", created.ID)
	return awaitResults(ctx, e, c, created.ID, *out)
}

// runResults is `qa results BATCH_ID [-o results.jsonl]`: the second half of
// `qa batch`, for a batch uploaded earlier (or left by Ctrl-C).
func runResults(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa results", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	out := fs.String("o", "", "write the results here (default: standard output)")
	noWait := fs.Bool("no-wait", false, "write the items finished so far and return at once")
	cf := addClientFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: qa results [flags] BATCH_ID\n\nWaits for a batch on QA_URL to end, showing its progress, then writes its\nresults as JSONL in input order. Exits 1 if any item failed.\n\nflags:")
		fs.PrintDefaults()
	}
	id, err := oneArg(fs, args)
	if err != nil {
		return err
	}
	c, err := newAPIClient(e, cf)
	if err != nil {
		return err
	}
	if *noWait {
		return saveResults(ctx, c, id, *out, e.stdout, false)
	}
	return awaitResults(ctx, e, c, id, *out)
}

// awaitResults follows batch id's events with a progress bar until it ends,
// then writes its results to out (standard output when empty). Interrupted,
// it says that the batch goes on and how to fetch it.
func awaitResults(ctx context.Context, e env, c *apiClient, id, out string) error {
	bar := newProgressBar(e.stderr, time.Now)
	var end batchProgressData
	err := c.follow(ctx, "/v1/batches/"+id+"/events", func(ev sseEvent) bool {
		var d batchProgressData
		if decodeJSON(strings.NewReader(ev.Data), &d) == nil && d.RequestCounts.Total > 0 {
			end = d
			bar.update(d)
		}
		return !terminalEvent(ev.Event, ev.Data)
	})
	bar.done()
	if err == nil {
		err = saveResults(ctx, c, id, out, e.stdout, true)
	}
	if err != nil {
		if ctx.Err() != nil {
			return batchGoesOn(c, id, out)
		}
		return fmt.Errorf("batch %s: %w", id, err)
	}
	n := end.RequestCounts
	fmt.Fprintf(e.stderr, "%s: %d completed, %d failed, %d cancelled of %d\n", end.Status, n.Completed, n.Failed, n.Cancelled, n.Total)
	if end.Provider != nil {
		showCost(ctx, e, c, id)
	}
	if n.Failed > 0 {
		return errItemsFailed{failed: n.Failed, total: n.Total}
	}
	if end.Status != "completed" {
		return fmt.Errorf("batch %s ended %s", id, end.Status)
	}
	return nil
}

// showCost prints what provider-mode batch id cost, once its runner has
// said: its last item can end the batch a moment before the runner writes
// the total and its phase done, so it waits (a little) for that phase. The
// results are saved already: a failed read is a line, not an error.
func showCost(ctx context.Context, e env, c *apiClient, id string) {
	var b struct {
		Cost     *batchCost    `json:"cost"`
		Provider *providerData `json:"provider"`
	}
	for tries := 0; ; tries++ {
		if err := c.getJSON(ctx, "GET", "/v1/batches/"+id, nil, &b); err != nil {
			fmt.Fprintf(e.stderr, "cost: not read (%v)\n", err)
			return
		}
		if b.Provider == nil || b.Provider.Phase == "done" || tries == costWaitTries {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(costWaitEvery):
		}
	}
	if b.Cost != nil {
		fmt.Fprintln(e.stderr, costLine(*b.Cost))
	}
}

// How long showCost waits for the runner's last word: 10 s at most.
const (
	costWaitTries = 40
	costWaitEvery = 250 * time.Millisecond
)

// saveResults writes batch id's results to out (stdout when empty): all of
// them, following the batch to its end, when wait; else those there are now.
func saveResults(ctx context.Context, c *apiClient, id, out string, stdout io.Writer, wait bool) error {
	get := func(w io.Writer) error {
		if wait {
			return downloadResults(ctx, c, id, w)
		}
		_, err := c.copyResults(ctx, "/v1/batches/"+id+"/results", w)
		return err
	}
	var err error
	if out == "" {
		err = get(stdout)
	} else {
		err = writeFile(out, get)
	}
	if err != nil {
		return fmt.Errorf("download results: %w", err)
	}
	return nil
}

// writeFile makes a new file at path and lets write fill it.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(write(f), f.Close())
}

// batchGoesOn is the Ctrl-C message of `qa batch` and `qa results`: the
// batch runs on in the service, and these commands get back to it.
func batchGoesOn(c *apiClient, id, out string) error {
	if out == "" {
		out = "results.jsonl"
	}
	auth := ""
	if c.key != "" {
		auth = ` -H "Authorization: Bearer $QA_API_KEY"`
	}
	return interrupted{fmt.Sprintf("batch %s goes on without this client.\n"+
		"  its results, once it ends:  qa results %s -o %s\n"+
		"  its progress:               qa watch %s\n"+
		"  to stop it:                 curl -s -X POST %s/v1/batches/%s/cancel%s",
		id, id, out, id, c.base, id, auth)}
}
