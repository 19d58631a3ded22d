package benchkit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LastGC reads the last GODEBUG=gctrace=1 line in a process's output:
// the GC's number and the live heap it left ("A->B->C MB": C).
func LastGC(output string) (n int, liveMB float64, ok bool) {
	lines := strings.Split(output, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if g, ok := parseGC(lines[i]); ok {
			return g.n, g.liveMB, true
		}
	}
	return 0, 0, false
}

// GCPeaks are the peaks of the GCs a process's gctrace output logged.
type GCPeaks struct {
	// GCs is how many GC lines were read.
	GCs int
	// HeapMB is the largest heap at a GC's start ("A->B->C MB": A), the
	// Go heap's high-water mark as the GC saw it; LiveMB the largest heap
	// a GC left (C).
	HeapMB, LiveMB float64
}

// PeakGC reads every GODEBUG=gctrace=1 line in a process's output (a Proc
// keeps its last 64 KiB) after the GC numbered after (0: all); ok is false
// when there is none.
func PeakGC(output string, after int) (p GCPeaks, ok bool) {
	for _, line := range strings.Split(output, "\n") {
		g, ok := parseGC(line)
		if !ok || g.n <= after {
			continue
		}
		p.GCs++
		p.HeapMB, p.LiveMB = max(p.HeapMB, g.startMB), max(p.LiveMB, g.liveMB)
	}
	return p, p.GCs > 0
}

// gcLine is one gctrace line: the GC's number and its "A->B->C MB".
type gcLine struct {
	n               int
	startMB, liveMB float64
}

func parseGC(line string) (gcLine, bool) {
	j := strings.Index(line, "gc ")
	if j < 0 || !strings.Contains(line, " MB goal") {
		return gcLine{}, false
	}
	f := strings.Fields(line[j:])
	if len(f) < 2 {
		return gcLine{}, false
	}
	num, err := strconv.Atoi(f[1])
	if err != nil {
		return gcLine{}, false
	}
	for k, w := range f {
		if w == "MB," && k > 0 && strings.Count(f[k-1], "->") == 2 {
			parts := strings.Split(f[k-1], "->")
			start, err1 := strconv.ParseFloat(parts[0], 64)
			live, err2 := strconv.ParseFloat(parts[2], 64)
			if err1 == nil && err2 == nil {
				return gcLine{n: num, startMB: start, liveMB: live}, true
			}
		}
	}
	return gcLine{}, false
}

// HeapAfterGC makes p (run with GODEBUG=gctrace=1) collect garbage by
// fetching url (something that allocates, such as /metrics) until two GCs
// newer than the last one in its output are logged, and returns the live
// heap the second left, in MB: what sync.Pools hold survives one GC in their
// victim caches, not two. It gives up after timeout.
func HeapAfterGC(ctx context.Context, p *Proc, url string, timeout time.Duration) (float64, error) {
	n0, _, _ := LastGC(p.Output())
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if n, _, ok := LastGC(p.Output()); ok && n > n0+1 {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	n, live, ok := LastGC(p.Output())
	if !ok || n <= n0+1 {
		return 0, fmt.Errorf("%s: not two GCs within %v (is GODEBUG=gctrace=1 set?)", p.Name, timeout)
	}
	return live, nil
}
