package benchkit

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the child when this process exits,
// however it exits.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
