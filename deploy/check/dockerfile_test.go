package check

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// TestDockerfilesParse runs each Dockerfile through BuildKit's parser and
// instruction decoder (what `docker build` does before it builds anything)
// and fails on any of its linter's warnings.
func TestDockerfilesParse(t *testing.T) {
	for _, name := range []string{"Dockerfile.api", "Dockerfile.worker"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("..", "..", name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			res, err := parser.Parse(f)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			for _, w := range res.Warnings {
				t.Errorf("parser warning: %s", w.Short)
			}
			var warnings []string
			lint := linter.New(&linter.Config{Warn: func(rule, description, url, msg string, loc []parser.Range) {
				line := 0
				if len(loc) > 0 {
					line = loc[0].Start.Line
				}
				warnings = append(warnings, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
			}})
			stages, _, err := instructions.Parse(res.AST, lint)
			if err != nil {
				t.Fatalf("instructions: %v", err)
			}
			if len(warnings) > 0 {
				t.Errorf("lint:\n%s", strings.Join(warnings, "\n"))
			}
			if len(stages) != 2 || stages[0].Name != "build" {
				t.Fatalf("want two stages, build and the final image; got %d", len(stages))
			}
			final := stages[1]
			if final.BaseName != "gcr.io/distroless/static-debian12:nonroot" {
				t.Errorf("final image from %q", final.BaseName)
			}
			var user, entrypoint, health string
			for _, cmd := range final.Commands {
				switch c := cmd.(type) {
				case *instructions.UserCommand:
					user = c.User
				case *instructions.EntrypointCommand:
					entrypoint = strings.Join(c.CmdLine, " ")
				case *instructions.HealthCheckCommand:
					health = strings.Join(c.Health.Test, " ")
				case *instructions.RunCommand:
					t.Errorf("RUN in the final image (it has no shell): %s", c.String())
				}
			}
			if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
				t.Errorf("USER %q: the image must run as non-root", user)
			}
			if entrypoint != "/qa" {
				t.Errorf("ENTRYPOINT %q", entrypoint)
			}
			if !strings.HasPrefix(health, "CMD /qa healthcheck") {
				t.Errorf("HEALTHCHECK %q", health)
			}
		})
	}
}
