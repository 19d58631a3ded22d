package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// qaPackage is the service's command, which findQA builds when it has no qa
// binary; the module's path makes it work from any directory of the checkout.
const qaPackage = "github.com/qaqueue/qaqueue/cmd/qa"

// findQA is the qa binary the bench starts as `qa api` and `qa worker`: path
// when given (-qa); else the qa beside self, qa-bench's own executable
// (`make bench` builds both into bin/); else one built from the checkout into
// dir, so that `go run ./cmd/qa-bench` works on its own. It says on progress
// which binary the run measures; version is what `qa version` says of it.
func findQA(ctx context.Context, path, self, dir string, progress io.Writer) (bin, version string, err error) {
	if bin, err = locateQA(ctx, path, self, dir, progress); err != nil {
		return "", "", err
	}
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "", "", fmt.Errorf("run %s version: %w", bin, err)
	}
	version = strings.TrimSpace(string(out))
	fmt.Fprintf(progress, "qa-bench: measuring %s (%s)\n", bin, version)
	return bin, version, nil
}

func locateQA(ctx context.Context, path, self, dir string, progress io.Writer) (string, error) {
	if path != "" {
		bin, err := exec.LookPath(path)
		if err != nil {
			return "", fmt.Errorf("find the qa binary (-qa): %w", err)
		}
		return filepath.Abs(bin) // the processes run in the bench's directory
	}
	if self != "" {
		beside := filepath.Join(filepath.Dir(self), "qa")
		if st, err := os.Stat(beside); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return beside, nil
		}
	}
	bin := filepath.Join(dir, "qa")
	fmt.Fprintf(progress, "qa-bench: no qa beside qa-bench: building %s…\n", qaPackage)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, qaPackage)
	build.Stdout, build.Stderr = progress, progress
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build qa (run qa-bench inside the checkout, or pass -qa PATH): %w", err)
	}
	return bin, nil
}
