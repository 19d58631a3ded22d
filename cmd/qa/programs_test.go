package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/programs"
	"github.com/rs/zerolog"
)

func TestProgramsCLI(t *testing.T) {
	t.Parallel()
	e, stdout, stderr := clientEnv(t)
	ctx := context.Background()
	runOK := func(args ...string) string {
		t.Helper()
		stdout.Reset()
		stderr.Reset()
		if code := run(ctx, e, append([]string{"programs"}, args...)); code != 0 {
			t.Fatalf("qa programs %v: exit %d, %s", args, code, stderr)
		}
		return stdout.String()
	}
	out := runOK("push", twoStageFile)
	version, ok := strings.CutPrefix(strings.TrimSpace(out), "two-stage@latest = ")
	if !ok || len(version) < 64 || !strings.HasSuffix(version, "(new version)") {
		t.Fatalf("push printed %q", out)
	}
	version = version[:64]
	if out := runOK("push", twoStageFile); !strings.Contains(out, version+" (already stored)") {
		t.Errorf("second push printed %q", out)
	}
	if out := runOK("list"); !strings.Contains(out, "two-stage") || !strings.Contains(out, "latest="+version[:12]) {
		t.Errorf("list printed %q", out)
	}
	if out := runOK("show", "two-stage"); !strings.Contains(out, `"input_schema"`) || !strings.Contains(out, `"answer.predict"`) {
		t.Errorf("show printed %q", out)
	}
	if out := runOK("alias", "two-stage@stable", version[:12]); strings.TrimSpace(out) != "two-stage@stable = "+version {
		t.Errorf("alias printed %q", out)
	}

	// A program file naming a file outside its folder is refused before
	// anything is sent.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte("name: p\nsource: ../secret.py\nstages:\n  - {key: s, module: Predict, signature: S}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run(ctx, e, []string{"programs", "push", filepath.Join(dir, "p.yaml")}); code == 0 || !strings.Contains(stderr.String(), `"../secret.py" leaves the program file's folder`) {
		t.Errorf("push of a file naming ../: exit %d, %s", code, stderr)
	}
	// Bad usage is refused with the usage.
	stderr.Reset()
	if code := run(ctx, e, []string{"programs", "alias", "two-stage"}); code == 0 || !strings.Contains(stderr.String(), "usage: qa programs") {
		t.Errorf("alias without a version: exit %d, %s", code, stderr)
	}
}

// PROGRAMS_DIR's program files are pushed, each with its source and state.
func TestPushProgramsDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"program.yaml", "signatures.py", "optimized.json"} {
		b, err := os.ReadFile(filepath.Join(twoStageDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db := redistest.New(t)
	builtin, err := programs.NewBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	r, err := newProgramRegistry(config.Default(), db.Client, builtin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := pushProgramsDir(ctx, r, dir, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	if _, v, err := r.Resolve(ctx, "two-stage"); err != nil || len(v) != 64 {
		t.Errorf("two-stage after the push: %q %v", v, err)
	}
	// A broken file stops start-up, named.
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("name: Broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pushProgramsDir(ctx, r, dir, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Errorf("a broken file: %v, want it named", err)
	}
}
