package benchkit

import (
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestExpandCPUList(t *testing.T) {
	for in, want := range map[string][]string{
		"0-1": {"0", "1"}, "0-2,5": {"0", "1", "2", "5"}, "3": {"3"}, "": nil,
	} {
		if got := ExpandCPUList(in); !slices.Equal(got, want) {
			t.Errorf("ExpandCPUList(%q) = %q; want %q", in, got, want)
		}
	}
}

// The measured process gets the last CPU, the rest the others; one CPU or
// no taskset pins nothing and says why.
func TestPlanPins(t *testing.T) {
	p := PlanPins([]string{"0", "1"}, "/usr/bin/taskset")
	if !p.On() || p.Measured != "1" || p.Rest != "0" {
		t.Errorf("2 CPUs: %+v; want measured 1, rest 0", p)
	}
	p = PlanPins([]string{"2", "3", "6", "7"}, "/usr/bin/taskset")
	if p.Measured != "7" || p.Rest != "2,3,6" {
		t.Errorf("CPUs 2,3,6,7: %+v; want measured 7, rest 2,3,6", p)
	}
	for _, c := range []struct {
		cpus    []string
		taskset string
	}{{[]string{"0"}, "/usr/bin/taskset"}, {[]string{"0", "1"}, ""}} {
		p := PlanPins(c.cpus, c.taskset)
		if p.On() || p.Note == "" {
			t.Errorf("PlanPins(%v, %q) = %+v; want off, with a note", c.cpus, c.taskset, p)
		}
		if bin, args := p.Wrap("1", "qa", "api"); bin != "qa" || !slices.Equal(args, []string{"api"}) {
			t.Errorf("unpinned Wrap = %s %v; want qa api", bin, args)
		}
	}
	p = PlanPins([]string{"0", "1"}, "/usr/bin/taskset")
	if bin, args := p.Wrap("1", "qa", "api"); bin != "/usr/bin/taskset" || !slices.Equal(args, []string{"-c", "1", "qa", "api"}) {
		t.Errorf("pinned Wrap = %s %v", bin, args)
	}
}

// A child started through Wrap runs on the CPU asked, and Move moves a
// running one and puts it back.
func TestPinsOnAProcess(t *testing.T) {
	p := DefaultPins()
	if !p.On() {
		t.Skip(p.Note)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	bin, args := p.Wrap(p.Measured, sleep, "30")
	child, err := StartProc("sleep", bin, t.TempDir(), nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(child.Kill)
	// taskset sets the CPUs, then execs sleep under the same pid.
	var got string
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if got = AllowedCPUs(child.PID()); got == p.Measured {
			break
		}
		if done, _ := child.Exited(); done {
			t.Fatalf("pinned child exited: %s", child.Output())
		}
	}
	if got != p.Measured {
		t.Fatalf("child's CPUs = %q; want %q", got, p.Measured)
	}
	was := AllowedCPUs(child.PID())
	restore, err := p.Move(child.PID(), p.Rest)
	if err != nil {
		t.Fatal(err)
	}
	if got := AllowedCPUs(child.PID()); got != p.Rest {
		t.Errorf("after Move: CPUs %q; want %q", got, p.Rest)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if got := AllowedCPUs(child.PID()); got != was {
		t.Errorf("after restore: CPUs %q; want %q", got, was)
	}
}
