package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// jobAnswer is the part of GET /v1/jobs/{id} the client prints.
type jobAnswer struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Result *struct {
		Outputs map[string]any `json:"outputs"`
	} `json:"result"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// runSubmit is `qa submit "question"`: prints the answer, or with --no-wait
// the job id.
func runSubmit(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa submit", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	noWait := fs.Bool("no-wait", false, "print the job id and return at once")
	cf := addClientFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: qa submit [flags] \"question\"\n\nSubmits a question to QA_URL (default "+defaultAPIURL+"; QA_API_KEY\nis sent as a Bearer key) and prints the answer.\n\nflags:")
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
	var sub jobAnswer
	if err := c.getJSON(ctx, "POST", "/v1/jobs", map[string]any{"question": arg}, &sub); err != nil {
		return err
	}
	if *noWait {
		fmt.Fprintln(e.stdout, sub.ID)
		return nil
	}
	for {
		var j jobAnswer
		if err := c.getJSON(ctx, "GET", "/v1/jobs/"+sub.ID+"?wait=60s", nil, &j); err != nil {
			if ctx.Err() != nil {
				return interrupted{fmt.Sprintf("job %s goes on; `qa watch %s` follows it", sub.ID, sub.ID)}
			}
			return fmt.Errorf("wait for job %s: %w", sub.ID, err)
		}
		switch j.Status {
		case "completed":
			answer, _ := j.Result.Outputs["answer"].(string)
			fmt.Fprintln(e.stdout, answer)
			return nil
		case "failed", "cancelled", "expired":
			msg := j.Status
			if j.Error != nil {
				msg += ": " + j.Error.Message
			}
			return fmt.Errorf("job %s %s", j.ID, msg)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// runWatch is `qa watch ID`: follows a job's or a batch's events until the
// end, printing the answer as it streams (a job) or the progress (a batch).
func runWatch(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa watch", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	raw := fs.Bool("raw", false, "print every event as \"type data\" instead")
	cf := addClientFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: qa watch [flags] ID\n\nFollows the events of a job or (an id starting batch_) a batch on QA_URL.\n\nflags:")
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
	if strings.HasPrefix(id, "batch_") {
		bar := newProgressBar(e.stderr, time.Now)
		var end batchProgressData
		err := c.follow(ctx, "/v1/batches/"+id+"/events", func(ev sseEvent) bool {
			if *raw {
				fmt.Fprintln(e.stdout, ev.Event, ev.Data)
			}
			var d batchProgressData
			if json.Unmarshal([]byte(ev.Data), &d) == nil && d.RequestCounts.Total > 0 {
				end = d
				if !*raw {
					bar.update(d)
				}
			}
			return !terminalEvent(ev.Event, ev.Data)
		})
		if !*raw {
			bar.done()
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: %d completed, %d failed, %d cancelled of %d\n", end.Status,
			end.RequestCounts.Completed, end.RequestCounts.Failed, end.RequestCounts.Cancelled, end.RequestCounts.Total)
		return nil
	}
	var failure error
	printed := false
	err = c.follow(ctx, "/v1/jobs/"+id+"/events", func(ev sseEvent) bool {
		if *raw {
			fmt.Fprintln(e.stdout, ev.Event, ev.Data)
			return !terminalEvent(ev.Event, ev.Data)
		}
		var d struct {
			Field, Content string
			Error          *struct{ Message string }
			Result         *struct{ Outputs map[string]any }
		}
		_ = json.Unmarshal([]byte(ev.Data), &d)
		switch ev.Event {
		case "token":
			if d.Field == "answer" {
				fmt.Fprint(e.stdout, d.Content)
				printed = true
			}
		case "started":
			printed = false
		case "retrying":
			fmt.Fprintln(e.stderr, "\n(retrying)")
		case "completed":
			if !printed && d.Result != nil {
				answer, _ := d.Result.Outputs["answer"].(string)
				fmt.Fprint(e.stdout, answer)
			}
			fmt.Fprintln(e.stdout)
		case "failed", "expired", "cancelled":
			failure = fmt.Errorf("job %s", ev.Event)
			if d.Error != nil {
				failure = fmt.Errorf("job %s: %s", ev.Event, d.Error.Message)
			}
		}
		return !terminalEvent(ev.Event, ev.Data)
	})
	if err != nil {
		return err
	}
	return failure
}

// terminalEvent reports whether an event ends a stream. A snapshot (sent in
// place of events trimmed away) carries the record: it ends the stream when
// the record has ended.
func terminalEvent(t string, data ...string) bool {
	if t == "snapshot" && len(data) > 0 {
		var v struct{ Status string }
		_ = json.Unmarshal([]byte(data[0]), &v)
		t = v.Status
	}
	switch t {
	case "completed", "failed", "cancelled", "expired":
		return true
	}
	return false
}

// oneArg parses flags around exactly one positional argument; anything else
// prints the usage.
func oneArg(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parseWithPositional(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", errUsage
	}
	if len(pos) != 1 {
		fs.Usage()
		return "", errUsage
	}
	return pos[0], nil
}
