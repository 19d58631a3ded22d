package main

import (
	"context"
	"flag"
	"fmt"
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
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: qa batch FILE.jsonl [-o results.jsonl]\n\nUploads a JSONL file (or a JSON array, FILE.json) of {\"custom_id\"?, \"question\"}\nto QA_URL, shows the progress, and writes the results as JSONL in input\norder. Exits 1 if any item failed.\n\nflags:")
		fs.PrintDefaults()
	}
	arg, err := oneArg(fs, args)
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
	c := newAPIClient(e)
	resp, err := c.do(ctx, "POST", "/v1/batches", ct, f, nil)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	var created struct {
		ID string `json:"id"`
	}
	err = decodeJSON(resp.Body, &created)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	fmt.Fprintln(e.stderr, "batch", created.ID)

	bar := newProgressBar(e.stderr, time.Now)
	var end batchProgressData
	err = c.follow(ctx, "/v1/batches/"+created.ID+"/events", func(ev sseEvent) bool {
		var d batchProgressData
		if decodeJSON(strings.NewReader(ev.Data), &d) == nil && d.RequestCounts.Total > 0 {
			end = d
			bar.update(d)
		}
		return !terminalEvent(ev.Event, ev.Data)
	})
	bar.done()
	if err != nil {
		return fmt.Errorf("follow batch %s: %w", created.ID, err)
	}
	w := e.stdout
	if *out != "" {
		of, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("create results file: %w", err)
		}
		defer of.Close()
		w = of
	}
	if err := downloadResults(ctx, c, created.ID, w); err != nil {
		return fmt.Errorf("download results: %w", err)
	}
	n := end.RequestCounts
	fmt.Fprintf(e.stderr, "%s: %d completed, %d failed, %d cancelled of %d\n", end.Status, n.Completed, n.Failed, n.Cancelled, n.Total)
	if n.Failed > 0 {
		return errItemsFailed{failed: n.Failed, total: n.Total}
	}
	if end.Status != "completed" {
		return fmt.Errorf("batch %s ended %s", created.ID, end.Status)
	}
	return nil
}
