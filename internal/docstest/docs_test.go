//go:build unix

package docstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
)

// blockTimeout bounds one block: a hang guard, not a timing assertion.
const blockTimeout = 2 * time.Minute

// docFiles are the documents whose blocks run, relative to the repository.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return append([]string{"../../README.md"}, files...)
}

// needTools skips the test without bash or curl, except in CI, where a test
// that silently skips is a test that does not run.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed to run the docs' shell blocks: %v", tool, err)
			}
			t.Skipf("%s is not installed: the docs' shell blocks are not run", tool)
		}
	}
}

// TestDocs runs every ```sh block of README.md and docs/*.md against a
// `qa dev` and compares each ```text block with its block's output; the
// rules are in the package doc.
func TestDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds qa and runs a server")
	}
	needTools(t, "bash", "curl")
	start := time.Now()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "qa"), "github.com/qaqueue/qaqueue/cmd/qa")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build qa: %v\n%s", err, out)
	}
	addr := startDev(t, filepath.Join(bin, "qa"))
	t.Logf("qa built and qa dev ready in %v", time.Since(start).Round(time.Millisecond))
	env := []string{
		"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"TMPDIR=" + os.TempDir(), "LANG=C.UTF-8", "QA_URL=http://" + addr,
	}
	for _, file := range docFiles(t) {
		name := strings.TrimPrefix(file, "../../")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			md, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			runFile(t, name, string(md), addr, env)
		})
	}
}

// runFile runs the blocks of one document in one session.
func runFile(t *testing.T, name, md, addr string, env []string) {
	dir := t.TempDir()
	// The reader's checkout: docs name the example programs by their path
	// in the repository.
	if err := os.CopyFS(filepath.Join(dir, "examples"), os.DirFS("../../examples")); err != nil {
		t.Fatalf("copy examples: %v", err)
	}
	s, err := Start(dir, append(env, "HOME="+dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ran, start := 0, time.Now()
	for _, b := range Parse(md) {
		if !b.Runs() {
			continue
		}
		ran++
		ctx, cancel := context.WithTimeout(context.Background(), blockTimeout)
		res, err := s.Run(ctx, strings.ReplaceAll(b.Code, "localhost:8000", addr))
		cancel()
		if err != nil {
			t.Fatalf("%s:%d: the block failed: %v\n%s\nstdout:\n%s\nstderr:\n%s%s", name, b.Line, err,
				indent(b.Code), indent(res.Stdout), indent(res.Stderr), shellOutput(s))
		}
		if b.Want != nil {
			if err := Match(b.Want.Code, res.Stdout); err != nil {
				t.Errorf("%s:%d: the output of the block at line %d: %v", name, b.Want.Line, b.Line, err)
			}
		}
	}
	t.Logf("%s: %d blocks ran in %v", name, ran, time.Since(start).Round(time.Millisecond))
}

func shellOutput(s *Session) string {
	if out := strings.TrimSpace(s.Shell()); out != "" {
		return "\nbash:\n" + indent(out)
	}
	return ""
}

// startDev runs `qa dev` from bin on a free loopback port with the demo LM
// answering at once, and returns its address; it stops with the test.
func startDev(t *testing.T, bin string) string {
	t.Helper()
	port, err := benchkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + os.TempDir(),
		"HOST=127.0.0.1", "PORT=" + strconv.Itoa(port), "LOG_LEVEL=warn", "LOG_FORMAT=json",
	}
	p, err := benchkit.StartProc("qa dev", bin, dir, env, "dev", "--demo-ttft", "0", "--demo-tps", "0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(30 * time.Second); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("qa dev output:\n%s", p.Output())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := benchkit.WaitReady(ctx, p, "http://"+addr+"/readyz", time.Minute); err != nil {
		t.Fatal(err)
	}
	return addr
}
