package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The small client: `qa submit`, `qa watch`, `qa batch`. QA_URL picks the
// server (default http://localhost:8000); QA_API_KEY, when set, is sent as
// "Authorization: Bearer <key>".

// apiClient talks to a qaqueue API.
type apiClient struct {
	base string
	key  string
	http *http.Client
}

func newAPIClient(e env) *apiClient {
	base := strings.TrimRight(e.getenv("QA_URL"), "/")
	if base == "" {
		base = "http://localhost:8000"
	}
	return &apiClient{base: base, key: e.getenv("QA_API_KEY"), http: &http.Client{}}
}

// do sends a request; a non-2xx answer becomes an error carrying the API's
// message.
func (c *apiClient) do(ctx context.Context, method, path, contentType string, body io.Reader, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, &httpError{status: resp.StatusCode, body: b}
	}
	return resp, nil
}

// getJSON sends a request and decodes a JSON answer into v.
func (c *apiClient) getJSON(ctx context.Context, method, path string, body any, v any) error {
	var r io.Reader
	ct := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		r, ct = strings.NewReader(string(b)), "application/json"
	}
	resp, err := c.do(ctx, method, path, ct, r, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode answer of %s: %w", path, err)
	}
	return nil
}

// httpError is a non-2xx answer.
type httpError struct {
	status int
	body   []byte
}

func (e *httpError) Error() string {
	var v struct {
		Error struct {
			Message  string            `json:"message"`
			Problems []json.RawMessage `json:"problems"`
		} `json:"error"`
	}
	if json.Unmarshal(e.body, &v) == nil && v.Error.Message != "" {
		msg := fmt.Sprintf("%d: %s", e.status, v.Error.Message)
		for _, p := range v.Error.Problems {
			msg += "\n  " + string(p)
		}
		return msg
	}
	return fmt.Sprintf("%d: %s", e.status, strings.TrimSpace(string(e.body)))
}

// sseEvent is one Server-Sent Events frame.
type sseEvent struct {
	ID, Event, Data string
}

// readSSE calls fn for each frame of r until r ends or fn returns false.
func readSSE(r io.Reader, fn func(sseEvent) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var ev sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read events: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if ev.Event != "" || ev.Data != "" {
				if !fn(ev) {
					return nil
				}
			}
			ev = sseEvent{}
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			if ev.Data != "" {
				ev.Data += "\n"
			}
			ev.Data += value
		}
	}
}

// follow reads an event stream, reconnecting with Last-Event-ID when the
// server asks (shutdown) or the connection drops, until fn returns false.
func (c *apiClient) follow(ctx context.Context, path string, fn func(sseEvent) bool) error {
	last := ""
	for attempt := 0; ; attempt++ {
		hdr := http.Header{"Accept": {"text/event-stream"}}
		if last != "" {
			hdr.Set("Last-Event-ID", last)
		}
		resp, err := c.do(ctx, "GET", path, "", nil, hdr)
		if err != nil {
			return err
		}
		done := false
		err = readSSE(resp.Body, func(ev sseEvent) bool {
			if ev.Event == "reconnect" {
				return false
			}
			if ev.ID != "" {
				last = ev.ID
			}
			done = !fn(ev)
			return !done
		})
		resp.Body.Close()
		if done || ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt >= 10 {
			if err == nil {
				err = errors.New("the stream keeps ending without a final event")
			}
			return err
		}
	}
}

// parseWithPositional parses flags that may come before or after the
// positional arguments (`qa batch FILE -o out`).
func parseWithPositional(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
