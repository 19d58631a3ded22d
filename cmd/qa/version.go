package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

// runVersion is `qa version`: the version and the Go release qa was built
// with.
func runVersion(_ context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa version", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: qa version\n\nPrints the version (stamped by `make build` and the images), the Go\nrelease and the platform qa was built for.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	fmt.Fprintf(e.stdout, "qa version %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// buildVersion is the stamped version; an unstamped build (`go install
// ./cmd/qa`) reports what the Go toolchain recorded of the checkout instead.
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return "dev " + bi.Main.Version
	}
	return version
}
