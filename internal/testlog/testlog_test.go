package testlog_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/qaqueue/qaqueue/internal/testlog"
)

// TestBufferConcurrent: writers on many goroutines lose nothing, and reads
// meanwhile see whole writes (run with -race).
func TestBufferConcurrent(t *testing.T) {
	var b testlog.Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("line\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "line\n"); n != 800 {
		t.Fatalf("%d lines, want 800", n)
	}
}
