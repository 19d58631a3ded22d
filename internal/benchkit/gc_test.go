package benchkit

import "testing"

// gctrace lines as Go 1.26 writes them, among a process's log lines.
const gctraceOutput = `{"level":"warn","message":"something"}
gc 1 @0.012s 2%: 0.011+1.2+0.004 ms clock, 0.022+0.3/1.1/0+0.008 ms cpu, 3->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 2 @0.500s 1%: 0.010+2.0+0.003 ms clock, 0.020+0.2/1.5/0+0.006 ms cpu, 9->10->4 MB, 10 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 3 @0.900s 1%: 0.010+2.0+0.003 ms clock, 0.020+0.2/1.5/0+0.006 ms cpu, 7->7->2 MB, 8 MB goal, 0 MB stacks, 0 MB globals, 2 P
`

func TestGCReadings(t *testing.T) {
	t.Parallel()
	if n, live, ok := LastGC(gctraceOutput); !ok || n != 3 || live != 2 {
		t.Errorf("LastGC = %d, %v, %v; want 3, 2 MB", n, live, ok)
	}
	if p, ok := PeakGC(gctraceOutput, 0); !ok || p != (GCPeaks{GCs: 3, HeapMB: 9, LiveMB: 4}) {
		t.Errorf("PeakGC(all) = %+v, %v; want 3 GCs, 9 MB, 4 MB", p, ok)
	}
	if p, ok := PeakGC(gctraceOutput, 2); !ok || p != (GCPeaks{GCs: 1, HeapMB: 7, LiveMB: 2}) {
		t.Errorf("PeakGC(after 2) = %+v, %v; want GC 3 alone", p, ok)
	}
	if _, ok := PeakGC(`{"level":"warn"}`, 0); ok {
		t.Error("PeakGC of output without gctrace: ok")
	}
}
