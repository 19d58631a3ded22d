// Package programstest builds the program registry tests serve programs
// from: a real programs.Registry on the test's Redis, with the built-in QA
// program as its fallback, as the API wires it. Only tests import it.
package programstest

import (
	"testing"

	"github.com/qaqueue/qaqueue/programs"
	"github.com/redis/go-redis/v9"
)

// New is a registry on rdb with cfg that serves the built-in QA program;
// it fails the test if either cannot be built.
func New(tb testing.TB, rdb redis.UniversalClient, cfg programs.Config) *programs.Registry {
	tb.Helper()
	builtin, err := programs.NewBuiltin()
	if err != nil {
		tb.Fatal(err)
	}
	r, err := programs.New(rdb, cfg, builtin)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}
