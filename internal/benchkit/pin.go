package benchkit

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Pins is where a scenario puts its processes so that the one it measures
// does not fight the load generator, the fake LM and Redis for a core:
// taskset CPU lists, or none when the machine cannot keep them apart.
type Pins struct {
	// Taskset is the taskset binary; "" when pinning is off.
	Taskset string
	// Measured is the CPU list of the process measured ("1"), Rest the
	// others' ("0").
	Measured, Rest string
	// Note says how the run was pinned, or why not, for the report.
	Note string
}

// On reports whether processes are pinned.
func (p Pins) On() bool { return p.Taskset != "" }

// PlanPins places the measured process on the last of the CPUs this
// process may use and everything else on the others, given taskset's path
// ("" when it is not installed). With one CPU or no taskset nothing is
// pinned, and the note says so.
func PlanPins(cpus []string, taskset string) Pins {
	switch {
	case taskset == "":
		return Pins{Note: "taskset not found (util-linux): run unpinned, the measured process shares the cores with the load"}
	case len(cpus) < 2:
		return Pins{Note: "one CPU: run unpinned, the measured process shares it with the load"}
	}
	measured, rest := cpus[len(cpus)-1], strings.Join(cpus[:len(cpus)-1], ",")
	return Pins{Taskset: taskset, Measured: measured, Rest: rest,
		Note: fmt.Sprintf("pinned with taskset: the measured process on CPU %s; the bench process (load generator, fake LM) and Redis on CPU %s", measured, rest)}
}

// DefaultPins plans pins for this machine: the CPUs this process may use,
// taskset from PATH.
func DefaultPins() Pins {
	ts, _ := exec.LookPath("taskset")
	return PlanPins(ExpandCPUList(allowedCPUs(os.Getpid())), ts)
}

// Wrap is the command line that runs bin with args on cpus: through taskset
// when pinning is on, else bin itself.
func (p Pins) Wrap(cpus, bin string, args ...string) (string, []string) {
	if !p.On() || cpus == "" {
		return bin, args
	}
	return p.Taskset, append([]string{"-c", cpus, bin}, args...)
}

// Move sets the CPUs of every thread of a running process (taskset -a -p)
// and returns a func that puts back the ones it had. A no-op when pinning is
// off.
func (p Pins) Move(pid int, cpus string) (restore func() error, err error) {
	if !p.On() {
		return func() error { return nil }, nil
	}
	was := allowedCPUs(pid)
	if was == "" {
		return nil, fmt.Errorf("pin %d: cannot read its CPUs", pid)
	}
	set := func(list string) error {
		if out, err := exec.Command(p.Taskset, "-a", "-p", "-c", list, strconv.Itoa(pid)).CombinedOutput(); err != nil {
			return fmt.Errorf("pin %d to %s: %w: %s", pid, list, err, out)
		}
		return nil
	}
	if err := set(cpus); err != nil {
		return nil, err
	}
	return func() error { return set(was) }, nil
}

// AllowedCPUs is a process's CPU list (Cpus_allowed_list in /proc, "0-1");
// "" when it cannot be read.
func AllowedCPUs(pid int) string { return allowedCPUs(pid) }

func allowedCPUs(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ExpandCPUList expands a CPU list ("0-2,5") to its CPUs ("0", "1", "2",
// "5"); a malformed part stays as it is.
func ExpandCPUList(list string) []string {
	var out []string
	if list == "" {
		return nil
	}
	for _, part := range strings.Split(list, ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if !ok || err1 != nil || err2 != nil || b < a {
			out = append(out, part)
			continue
		}
		for i := a; i <= b; i++ {
			out = append(out, strconv.Itoa(i))
		}
	}
	return out
}
