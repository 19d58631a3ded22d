package benchkit

import (
	"math"
	"os"
	"testing"
	"time"
)

const statBefore = `cpu  300 0 100 600 0 0 0 0 0 0
cpu0 100 0 50 350 0 0 0 0 0 0
cpu1 200 0 50 250 0 0 0 0 0 0
intr 12345 0 0
ctxt 999
`

const statAfter = `cpu  500 0 200 700 0 0 0 0 0 0
cpu0 150 0 100 430 20 0 0 0 0 0
cpu1 350 0 100 250 0 0 0 0 5 0
intr 12399 0 0
`

// Busy is the share of a CPU's ticks not idle or waiting on I/O, summed
// over the CPUs listed; the aggregate "cpu" line and other lines are not
// CPUs.
func TestBusyPercent(t *testing.T) {
	before, err := ParseCoreStats(statBefore)
	if err != nil {
		t.Fatal(err)
	}
	after, err := ParseCoreStats(statAfter)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 2 {
		t.Fatalf("parsed %d CPUs, want 2: %v", len(before), before)
	}
	for _, tt := range []struct {
		list string
		want float64
	}{
		// cpu0: 50+50 busy of 200 ticks (80 idle, 20 iowait); cpu1: 150+50+5 of 205.
		{"0", 50}, {"1", 100}, {"0-1", 150},
	} {
		got, err := BusyPercent(before, after, tt.list)
		if err != nil || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("BusyPercent(%q) = %v, %v; want %v", tt.list, got, err, tt.want)
		}
	}
	if _, err := BusyPercent(before, after, "7"); err == nil {
		t.Error("BusyPercent of a CPU not in /proc/stat: no error")
	}
	if _, err := ParseCoreStats("intr 1 2 3\n"); err == nil {
		t.Error("ParseCoreStats with no cpuN line: no error")
	}
}

// The wait is schedstat's second field; this process, having run, has a
// schedstat to read.
func TestRunQueueWait(t *testing.T) {
	if got, err := ParseSchedstat("123456 7890 42\n"); err != nil || got != 7890*time.Nanosecond {
		t.Errorf("ParseSchedstat = %v, %v; want 7.89µs", got, err)
	}
	if _, err := ParseSchedstat("123456"); err == nil {
		t.Error("ParseSchedstat of one field: no error")
	}
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc/self/task:", err)
	}
	if _, err := RunQueueWait(os.Getpid()); err != nil {
		t.Errorf("RunQueueWait(self): %v", err)
	}
}
