package benchkit

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CoreTicks is one CPU's time from /proc/stat, in clock ticks: all of it,
// and the part spent idle (idle and iowait).
type CoreTicks struct{ Total, Idle uint64 }

// CoreStats reads every CPU's ticks from /proc/stat, keyed by CPU number
// ("0", "1", ...). A process's own CPU time says what it used, not whether
// it could have had more: on a shared machine the rest of a core may go to
// other processes, which only the core's idle time shows.
func CoreStats() (map[string]CoreTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, fmt.Errorf("read core stats: %w", err)
	}
	return ParseCoreStats(string(b))
}

// ParseCoreStats parses the text of /proc/stat (see CoreStats).
func ParseCoreStats(text string) (map[string]CoreTicks, error) {
	cores := map[string]CoreTicks{}
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		// user nice system idle iowait irq softirq steal [guest guest_nice]:
		// guest time is counted in user already.
		var t CoreTicks
		for i, s := range f[1:min(len(f), 9)] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse core stats: %s: %w", f[0], err)
			}
			t.Total += v
			if i == 3 || i == 4 {
				t.Idle += v
			}
		}
		cores[strings.TrimPrefix(f[0], "cpu")] = t
	}
	if len(cores) == 0 {
		return nil, errors.New("parse core stats: no cpuN lines")
	}
	return cores, nil
}

// BusyPercent is how busy the CPUs in list (a taskset list, "0-1,3") were
// between two CoreStats, by every process on the machine, in % of one CPU
// (so two busy CPUs make 200).
func BusyPercent(before, after map[string]CoreTicks, list string) (float64, error) {
	var busy float64
	for _, c := range ExpandCPUList(list) {
		b, okB := before[c]
		a, okA := after[c]
		if !okB || !okA {
			return 0, fmt.Errorf("busy percent: no CPU %s in /proc/stat", c)
		}
		total, idle := a.Total-b.Total, a.Idle-b.Idle
		if total == 0 {
			continue
		}
		busy += 100 * float64(total-idle) / float64(total)
	}
	return busy, nil
}

// RunQueueWait is how long the threads of process pid have waited on a run
// queue, runnable but not running, from /proc/PID/task/*/schedstat (threads
// that have exited are not counted). Over a window it tells a process short
// of CPU (its core busy with others) from one waiting on I/O.
func RunQueueWait(pid int) (time.Duration, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("read run queue wait: %w", err)
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread has exited
		}
		w, err := ParseSchedstat(string(b))
		if err != nil {
			return 0, fmt.Errorf("read run queue wait: %w", err)
		}
		total += w
	}
	return total, nil
}

// ParseSchedstat is the run-queue wait in a schedstat line: "on-CPU ns,
// waiting ns, timeslices".
func ParseSchedstat(line string) (time.Duration, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, fmt.Errorf("parse schedstat %q: want 3 fields", line)
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse schedstat: %w", err)
	}
	return time.Duration(ns), nil
}
