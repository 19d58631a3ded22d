package benchkit

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// Frame is one Server-Sent Events frame.
type Frame struct {
	ID, Event, Data string
	// At is when the frame's last line was read.
	At time.Time
}

// IDTime is the Redis clock time in an event id ("ms-seq"): when the event
// was published. Zero for other ids.
func (f Frame) IDTime() time.Time {
	ms, _, ok := strings.Cut(f.ID, "-")
	if !ok {
		return time.Time{}
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// ReadSSE reads frames from r and hands each to fn until fn returns false, r
// ends or fails. Comments are skipped; data lines are joined with "\n".
func ReadSSE(r io.Reader, fn func(Frame) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	var f Frame
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if f.Event != "" || len(data) > 0 || f.ID != "" {
				f.Data = strings.Join(data, "\n")
				f.At = time.Now()
				if !fn(f) {
					return nil
				}
			}
			f, data = Frame{}, data[:0]
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		case strings.HasPrefix(line, "event:"):
			f.Event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "id:"):
			f.ID = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		}
	}
	return sc.Err()
}
