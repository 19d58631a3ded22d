package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// The small client: `qa submit`, `qa watch`, `qa batch`, `qa results`.
// QA_URL (or --url) picks the server, default http://localhost:8000;
// QA_API_KEY (or --key), when set, is sent as "Authorization: Bearer <key>".

// defaultAPIURL is where `qa dev` listens with the default PORT.
const defaultAPIURL = "http://localhost:8000"

// clientFlags are the flags every client command takes beside QA_URL and
// QA_API_KEY; a flag wins over its variable.
type clientFlags struct{ url, key string }

func addClientFlags(fs *flag.FlagSet) *clientFlags {
	var f clientFlags
	fs.StringVar(&f.url, "url", "", "the API's base URL (default $QA_URL, else "+defaultAPIURL+")")
	fs.StringVar(&f.key, "key", "", "the API key, sent as a Bearer token (default $QA_API_KEY; a flag is visible in ps)")
	return &f
}

// apiClient talks to a qaqueue API.
type apiClient struct {
	base string
	from string // where base came from, for errors: "QA_URL", "--url" or ""
	key  string
	http *http.Client
}

// newAPIClient resolves the flags and variables into a client; a base that
// is not an http(s) URL is refused here, in words.
func newAPIClient(e env, f *clientFlags) (*apiClient, error) {
	base, from := f.url, "--url"
	if base == "" {
		base, from = e.getenv("QA_URL"), "QA_URL"
	}
	if base == "" {
		base, from = defaultAPIURL, ""
	}
	if err := checkBaseURL(base); err != nil {
		return nil, fmt.Errorf("%s=%q is not a URL: %w", from, base, err)
	}
	key := f.key
	if key == "" {
		key = e.getenv("QA_API_KEY")
	}
	return &apiClient{base: strings.TrimRight(base, "/"), from: from, key: key, http: &http.Client{}}, nil
}

// checkBaseURL accepts an absolute http or https URL with a host, and
// suggests the scheme people leave out ("localhost:8000").
func checkBaseURL(base string) error {
	u, err := url.Parse(base)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return nil
	}
	if v, err := url.Parse("http://" + base); err == nil && v.Host != "" && !strings.Contains(base, "://") {
		return fmt.Errorf("did you mean http://%s?", base)
	}
	return errors.New("it needs http:// or https:// and a host, as in " + defaultAPIURL)
}

// do sends a request; a non-2xx answer becomes an error carrying the API's
// message, and a request that never reached the API says so in words.
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
		if ctx.Err() != nil {
			return nil, ctx.Err() // Ctrl-C: the caller says what goes on
		}
		return nil, c.unreachable(err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, &httpError{status: resp.StatusCode, body: b}
	}
	return resp, nil
}

// unreachable words a transport error: the API's address, the innermost
// cause ("connection refused", not Go's "dial tcp …: connect: …") and what
// to check.
func (c *apiClient) unreachable(err error) error {
	for {
		var ue *url.Error
		var oe *net.OpError
		var se *os.SyscallError
		var de *net.DNSError
		switch {
		case errors.As(err, &de):
			err = errors.New(de.Err) // "no such host": the host is in c.base
		case errors.As(err, &ue) && ue.Err != nil:
			err = ue.Err
		case errors.As(err, &oe) && oe.Err != nil:
			err = oe.Err
		case errors.As(err, &se) && se.Err != nil:
			err = se.Err
		default:
			hint := "Is `qa dev` running, or is " + c.from + " wrong?"
			if c.from == "" {
				hint = "Is `qa dev` running? Set QA_URL or --url for another address."
			}
			return fmt.Errorf("cannot reach the API at %s: %v. %s", c.base, err, hint)
		}
	}
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
	msg := strings.TrimSpace(string(e.body))
	if json.Unmarshal(e.body, &v) == nil && v.Error.Message != "" {
		msg = v.Error.Message
		for _, p := range v.Error.Problems {
			msg += "\n  " + string(p)
		}
	}
	msg = fmt.Sprintf("the API answered %d %s: %s", e.status, http.StatusText(e.status), msg)
	if e.status == http.StatusUnauthorized {
		msg += "\n(send an API key with QA_API_KEY or --key)"
	}
	return msg
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
