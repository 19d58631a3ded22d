package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestQALinksNoBenchKit keeps the benchmarks out of the service's binary and
// images: they are cmd/qa-bench's, and the measuring kit they share with the
// tests (internal/benchkit, internal/redisproc) is linked by no qa package.
func TestQALinksNoBenchKit(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/qaqueue/qaqueue/cmd/qa").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "github.com/qaqueue/qaqueue/internal/benchkit", "github.com/qaqueue/qaqueue/internal/redisproc":
			t.Errorf("qa links %s (the bench kit belongs to cmd/qa-bench)", pkg)
		}
	}
}
