//go:build unix

package docstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Session is one `bash -euo pipefail` running a file's blocks in order, so
// that what a block sets is there for the next.
type Session struct {
	cmd     *exec.Cmd
	script  io.WriteCloser // bash reads its commands here
	done    *bufio.Reader  // bash's fd 3: a line as each block ends
	scratch string         // the blocks' scripts and output
	shell   bytes.Buffer   // bash's own stderr: errors outside any block
	exited  chan struct{}
	err     error // bash's exit, set before exited closes
	n       int
}

// Result is what a block printed.
type Result struct{ Stdout, Stderr string }

// Start runs bash in dir with env (the whole environment: nothing is
// inherited).
func Start(dir string, env []string) (*Session, error) {
	scratch, err := os.MkdirTemp("", "docstest-")
	if err != nil {
		return nil, fmt.Errorf("start session: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		_ = os.RemoveAll(scratch)
		return nil, fmt.Errorf("start session: %w", err)
	}
	s := &Session{scratch: scratch, done: bufio.NewReader(r), exited: make(chan struct{})}
	s.cmd = exec.Command("bash", "--noprofile", "--norc", "-euo", "pipefail")
	s.cmd.Dir, s.cmd.Env = dir, env
	s.cmd.ExtraFiles = []*os.File{w}
	s.cmd.Stdout, s.cmd.Stderr = &s.shell, &s.shell
	// Its own process group, so a block's children die with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.script, err = s.cmd.StdinPipe(); err == nil {
		err = s.cmd.Start()
	}
	_ = w.Close() // bash holds its copy
	if err != nil {
		_ = r.Close()
		_ = os.RemoveAll(scratch)
		return nil, fmt.Errorf("start bash: %w", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		_ = r.Close()
		close(s.exited)
	}()
	return s, nil
}

// Run runs code as the session's next block and returns what it printed.
// A block that fails ends the session (set -e), and so does one still
// running when ctx ends (it is killed); either is an error.
func (s *Session) Run(ctx context.Context, code string) (Result, error) {
	s.n++
	base := filepath.Join(s.scratch, strconv.Itoa(s.n))
	if err := os.WriteFile(base+".sh", []byte(code), 0o600); err != nil {
		return Result{}, fmt.Errorf("write block: %w", err)
	}
	// The block's stdin is empty: the session's is this script.
	cmd := fmt.Sprintf("source %s </dev/null >%s 2>%s\necho %d >&3\n",
		shellQuote(base+".sh"), shellQuote(base+".out"), shellQuote(base+".err"), s.n)
	if _, err := io.WriteString(s.script, cmd); err != nil {
		return s.result(base), fmt.Errorf("the session is over: %w", s.wait())
	}
	line := make(chan error, 1)
	go func() {
		l, err := s.done.ReadString('\n')
		if err == nil && strings.TrimSpace(l) != strconv.Itoa(s.n) {
			err = fmt.Errorf("unexpected end marker %q", l)
		}
		line <- err
	}()
	select {
	case err := <-line:
		if err != nil {
			return s.result(base), fmt.Errorf("exited: %w", s.wait())
		}
		return s.result(base), nil
	case <-ctx.Done():
		s.kill()
		return s.result(base), fmt.Errorf("still running when the test gave up (%v): killed", context.Cause(ctx))
	}
}

// Close ends the session.
func (s *Session) Close() {
	_ = s.script.Close()
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.kill()
	}
	_ = os.RemoveAll(s.scratch)
}

// Shell is what bash printed outside any block (its own syntax errors).
func (s *Session) Shell() string {
	<-s.exited
	return s.shell.String()
}

func (s *Session) wait() error {
	<-s.exited
	if s.err == nil {
		return errors.New("bash ended with status 0 before the block did")
	}
	return s.err
}

func (s *Session) kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

func (s *Session) result(base string) Result {
	out, _ := os.ReadFile(base + ".out")
	errOut, _ := os.ReadFile(base + ".err")
	return Result{Stdout: string(out), Stderr: string(errOut)}
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
