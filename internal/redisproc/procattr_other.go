//go:build !linux

package redisproc

import "os/exec"

// dieWithParent has no portable equivalent; elsewhere a shared server may
// outlive an interrupted test binary.
func dieWithParent(cmd *exec.Cmd) {}
