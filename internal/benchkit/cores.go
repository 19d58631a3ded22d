package benchkit

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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
