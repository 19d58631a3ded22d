package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// resultsContinue is the line that ends a results download early (the
// server's BATCH_RESULTS_MAX_WAIT, a shutdown, a failed read): the rest is
// at Next.
type resultsContinue struct {
	Offset int    `json:"offset"`
	Next   string `json:"next"`
	Reason string `json:"reason"`
}

// continuePrefix starts a continue line, as the server writes it.
var continuePrefix = []byte(`{"object":"batch.results.continue"`)

// resultsRetries is how many downloads in a row may end early with a failed
// read before downloadResults gives up; resultsRetryDelay is the pause
// before each retry.
const (
	resultsRetries    = 5
	resultsRetryDelay = time.Second
)

// downloadResults writes batch id's results to w as JSONL in input order,
// following the batch to its end. A response that ends early is requested
// again from where its continue line says, so w gets each result once.
func downloadResults(ctx context.Context, c *apiClient, id string, w io.Writer) error {
	next, failed := "/v1/batches/"+id+"/results?wait=true", 0
	for {
		cont, err := c.copyResults(ctx, next, w)
		if err != nil || cont == nil {
			return err
		}
		if cont.Reason != "error" {
			failed = 0
		} else if failed++; failed > resultsRetries {
			return fmt.Errorf("the server failed to read them %d times in a row", failed)
		} else {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(resultsRetryDelay):
			}
		}
		next = cont.Next
	}
}

// copyResults copies one results response to w; it returns the response's
// continue line, if it ended with one.
func (c *apiClient) copyResults(ctx context.Context, path string, w io.Writer) (*resultsContinue, error) {
	resp, err := c.do(ctx, "GET", path, "", nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return copyResultLines(resp.Body, w)
}

// copyResultLines copies result lines from r to w. It drops empty lines (the
// heartbeats of a download that waits) and stops at a continue line, which
// it returns.
func copyResultLines(r io.Reader, w io.Writer) (*resultsContinue, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		switch {
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, errors.New("read results: the response ended mid-line")
		case errors.Is(err, io.EOF):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("read results: %w", err)
		case len(bytes.TrimSpace(line)) == 0:
		case bytes.HasPrefix(line, continuePrefix):
			var cont resultsContinue
			if err := json.Unmarshal(line, &cont); err != nil || cont.Next == "" {
				return nil, fmt.Errorf("read results: a continue line without next: %s", bytes.TrimSpace(line))
			}
			return &cont, nil
		default:
			if _, err := w.Write(line); err != nil {
				return nil, fmt.Errorf("write results: %w", err)
			}
		}
	}
}
