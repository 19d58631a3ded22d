package main

import (
	"context"
	"errors"
)

// runConfig is owned by the config work (issue 4, config part).
func runConfig(ctx context.Context, e env, args []string) error {
	return errors.New("not implemented yet")
}
