package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// LeanEvents follows the SSE stream at base+path as a load generator must
// at thousands of subscribers: its own connection, no transport goroutines,
// small buffers, and data lines skipped (Frame.Data stays empty), so that
// the client's CPU per event is small beside the server's. fn gets each
// frame until it returns false or the stream ends.
func LeanEvents(ctx context.Context, base, path string, fn func(Frame) bool) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("follow events: %w", err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return fmt.Errorf("follow events: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, u.Host); err != nil {
		return fmt.Errorf("follow events: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil) // its Body undoes the chunking
	if err != nil {
		return fmt.Errorf("follow events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &StatusError{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Body: string(b)}
	}
	err = readLean(bufio.NewReaderSize(resp.Body, 1024), fn)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readLean reads SSE frames keeping only their id and event.
func readLean(br *bufio.Reader, fn func(Frame) bool) error {
	var f Frame
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) { // a long data line: skip the rest of it
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return endOf(err)
			}
			continue
		}
		if err != nil {
			return endOf(err)
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if f.Event != "" || f.ID != "" {
				f.At = time.Now()
				if !fn(f) {
					return nil
				}
			}
			f = Frame{}
		case bytes.HasPrefix(line, []byte("id:")):
			f.ID = string(bytes.TrimSpace(line[3:]))
		case bytes.HasPrefix(line, []byte("event:")):
			f.Event = eventName(bytes.TrimSpace(line[6:]))
		}
	}
}

// eventName is b as a string, without an allocation for the events the
// bench reads most.
func eventName(b []byte) string {
	switch string(b) { // no allocation: the compiler compares in place
	case "token":
		return "token"
	case "completed":
		return "completed"
	case "failed":
		return "failed"
	case "started":
		return "started"
	}
	return string(b)
}

func endOf(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
