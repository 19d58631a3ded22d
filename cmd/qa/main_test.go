package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/lmclient"
)

// runCmd runs `qa args...` with environ and returns the exit status, stdout
// and stderr.
func runCmd(t *testing.T, environ map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
		getenv: func(k string) string { return environ[k] }}
	code := run(context.Background(), e, args)
	return code, stdout.String(), stderr.String()
}

func TestHelpPrintsToStdoutAndSucceeds(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"help", "-h", "--help"} {
		code, stdout, stderr := runCmd(t, nil, arg)
		if code != 0 || !strings.HasPrefix(stdout, "usage: qa <command>") || stderr != "" {
			t.Errorf("qa %s: exit %d, stdout %q, stderr %q", arg, code, stdout, stderr)
		}
	}
	// A mistake is still one: usage on stderr, exit 2.
	for _, args := range [][]string{nil, {"nosuch"}} {
		code, stdout, stderr := runCmd(t, nil, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "usage: qa <command>") {
			t.Errorf("qa %q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	// `qa help CMD` is `qa CMD -h`.
	code, _, stderr := runCmd(t, nil, "help", "batch")
	if code != 0 || !strings.Contains(stderr, "usage: qa batch") {
		t.Errorf("qa help batch: exit %d, stderr %q", code, stderr)
	}
}

func TestUsageIsAligned(t *testing.T) {
	t.Parallel()
	_, stdout, _ := runCmd(t, nil, "help")
	col := -1
	n := 0
	for _, line := range strings.Split(stdout, "\n") {
		m := regexp.MustCompile(`^  (\S+)( +)\S`).FindStringSubmatchIndex(line)
		if m == nil {
			continue
		}
		n++
		if c := m[5]; col < 0 {
			col = c
		} else if c != col {
			t.Errorf("summary of %q starts at column %d, the first at %d:\n%s", line[m[2]:m[3]], c, col, stdout)
		}
	}
	if n != len(commands()) {
		t.Errorf("usage lists %d commands, there are %d:\n%s", n, len(commands()), stdout)
	}
}

func TestVersionPrintsTheStampAndGo(t *testing.T) {
	old := version
	version = "v9.8.7-test"
	t.Cleanup(func() { version = old })
	code, stdout, _ := runCmd(t, nil, "version")
	if code != 0 || !strings.Contains(stdout, "v9.8.7-test") || !strings.Contains(stdout, runtime.Version()) {
		t.Fatalf("qa version: exit %d, %q", code, stdout)
	}
}

// TestREADMEListsEveryCommand keeps the README's command list (the text
// block after its `qa help`) naming exactly the subcommands qa has; the docs
// test (internal/docstest) checks the rest of that block's text.
func TestREADMEListsEveryCommand(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```sh\nqa help\n```\n```text\n")
	if !ok {
		t.Fatal("README.md has no ```sh qa help``` block followed by a ```text block")
	}
	block, _, _ = strings.Cut(block, "```")
	var listed []string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z]+) `).FindAllStringSubmatch(block, -1) {
		listed = append(listed, m[1])
	}
	var have []string
	for n := range commands() {
		have = append(have, n)
	}
	sort.Strings(have)
	if !slices.Equal(listed, have) {
		t.Fatalf("README.md lists %v, qa has %v", listed, have)
	}
}

// The servers' -h names the variables that matter for each (real ones:
// config's, or a provider's key variable) and points at `qa config`.
func TestServerHelpNamesVariables(t *testing.T) {
	t.Parallel()
	known := map[string]bool{}
	for _, v := range config.Variables() {
		known[v] = true
	}
	for _, p := range lmclient.Providers() {
		for _, v := range append(p.KeyVars, p.BaseVars...) {
			known[v] = true
		}
	}
	for cmd, want := range map[string][]string{
		"api":    {"API_KEYS", "REDIS_URL", "PORT"},
		"worker": {"DSPY_MODEL", "LM_API_KEY", "PROGRAM_STATE_PATH", "WORKER_CONCURRENCY"},
		"dev":    {"DSPY_MODEL", "OPENAI_API_KEY", "LM_API_BASE", "REDIS_URL", "-demo-tps"},
	} {
		code, _, stderr := runCmd(t, nil, cmd, "-h")
		if code != 0 || !strings.Contains(stderr, "qa config") {
			t.Errorf("qa %s -h: exit %d, no `qa config` pointer:\n%s", cmd, code, stderr)
		}
		for _, w := range want {
			if !strings.Contains(stderr, w) {
				t.Errorf("qa %s -h does not name %s:\n%s", cmd, w, stderr)
			}
		}
		for _, v := range regexp.MustCompile(`\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b`).FindAllString(stderr, -1) {
			if !known[v] {
				t.Errorf("qa %s -h names %s, which nothing reads", cmd, v)
			}
		}
	}
}
