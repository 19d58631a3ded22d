package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A qa binary stand-in: `version` answers as qa does.
const fakeQA = "#!/bin/sh\necho qa version fake go0 linux/amd64\n"

func writeExe(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
}

// -qa wins over a qa beside qa-bench, and is made absolute (the processes
// run in the bench's own directory). Not parallel: it changes directory.
func TestFindQATakesTheFlag(t *testing.T) {
	dir := t.TempDir()
	writeExe(t, filepath.Join(dir, "qa"), fakeQA)
	writeExe(t, filepath.Join(dir, "other-qa"), fakeQA)
	t.Chdir(dir)
	var progress bytes.Buffer
	bin, version, err := findQA(context.Background(), "./other-qa", filepath.Join(dir, "qa-bench"), t.TempDir(), &progress)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "other-qa"); bin != want || version != "qa version fake go0 linux/amd64" {
		t.Errorf("findQA = %q, %q; want %q and the fake's version", bin, version, want)
	}
	if !strings.Contains(progress.String(), bin) {
		t.Errorf("progress does not name the binary measured: %q", progress.String())
	}
	if _, _, err := findQA(context.Background(), filepath.Join(dir, "nosuch"), "", t.TempDir(), &progress); err == nil {
		t.Error("findQA with a -qa that does not exist: no error")
	}
}

func TestFindQAUsesTheQABesideItself(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeExe(t, filepath.Join(dir, "qa"), fakeQA)
	bin, _, err := findQA(context.Background(), "", filepath.Join(dir, "qa-bench"), t.TempDir(), &bytes.Buffer{})
	if err != nil || bin != filepath.Join(dir, "qa") {
		t.Errorf("findQA = %q, %v; want the qa beside qa-bench", bin, err)
	}
}

// Without a qa beside it (`go run ./cmd/qa-bench`), qa-bench builds the
// service's command from the checkout: a real qa, with its subcommands.
func TestFindQABuildsQA(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/qa")
	}
	t.Parallel()
	dir := t.TempDir()
	bin, version, err := findQA(context.Background(), "", filepath.Join(t.TempDir(), "qa-bench"), dir, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(bin) != dir || !strings.HasPrefix(version, "qa version ") {
		t.Fatalf("findQA = %q, %q; want a qa built into %s", bin, version, dir)
	}
	out, err := exec.Command(bin, "help").Output()
	if err != nil || !strings.Contains(string(out), "  worker ") || !strings.Contains(string(out), "  api ") {
		t.Fatalf("%s help: %v\n%s", bin, err, out)
	}
}

func TestListAndUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	e := env{stdout: &stdout, stderr: &stderr}
	if code := run(context.Background(), e, []string{"-list"}); code != 0 {
		t.Fatalf("qa-bench -list: exit %d, %s", code, stderr.String())
	}
	for _, s := range benchScenarios() {
		if !strings.Contains(stdout.String(), "  "+s.name+" ") {
			t.Errorf("qa-bench -list does not list %s:\n%s", s.name, stdout.String())
		}
	}
	for _, args := range [][]string{{"nosuch"}, {"-nosuch"}} {
		stderr.Reset()
		if code := run(context.Background(), e, args); code != 2 || !strings.Contains(stderr.String(), "nosuch") {
			t.Errorf("qa-bench %q: exit %d, want 2 and a word on it: %q", args, code, stderr.String())
		}
	}
	stderr.Reset()
	if code := run(context.Background(), e, []string{"-h"}); code != 0 || !strings.Contains(stderr.String(), "usage: qa-bench") {
		t.Errorf("qa-bench -h: exit %d, %q", code, stderr.String())
	}
}

// `qa-bench samework` runs a process of the same-work baseline, which the
// bench starts; without a role it says what it wants and fails.
func TestSameworkCommand(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), env{stdout: &stdout, stderr: &stderr}, []string{"samework"})
	if code != 1 || !strings.Contains(stderr.String(), "want api or worker") {
		t.Errorf("qa-bench samework: exit %d, %q; want 1 and the roles", code, stderr.String())
	}
}
