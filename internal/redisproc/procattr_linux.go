package redisproc

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill redis-server when the test binary
// exits, however it exits: a shared server must not outlive its tests.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
