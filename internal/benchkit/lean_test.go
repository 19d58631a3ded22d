package benchkit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The lean client reads frames flushed one by one (chunked), skips data
// lines longer than its buffer, stops when told, and reports a refusal.
func TestLeanEvents(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/jobs/j/events" || r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "no such stream", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": comment\n\n")
		for i := range 3 {
			fmt.Fprintf(w, "id: 1700000000%03d-0\nevent: token\ndata: {\"content\":%q}\n\n", i, strings.Repeat("x", 5000*i))
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "id: 1700000000999-0\r\nevent: completed\r\ndata: {}\r\n\r\n")
		fmt.Fprint(w, "event: after\n\n")
	}))
	t.Cleanup(srv.Close)
	var got []string
	err := LeanEvents(context.Background(), srv.URL, "/v1/jobs/j/events", func(f Frame) bool {
		if f.At.IsZero() || (f.Event == "token" && f.IDTime().IsZero()) {
			t.Errorf("frame %+v: no read time or id time", f)
		}
		got = append(got, f.ID+" "+f.Event)
		return f.Event != "completed"
	})
	want := []string{"1700000000000-0 token", "1700000000001-0 token", "1700000000002-0 token", "1700000000999-0 completed"}
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("LeanEvents = %q, %v; want %q", got, err, want)
	}
	err = LeanEvents(context.Background(), srv.URL, "/nosuch", func(Frame) bool { return true })
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Fatalf("LeanEvents on a 404: %v; want a StatusError 404", err)
	}
}
