package main

import (
	"context"
	"errors"
)

// runFakeLM is owned by the LM client work (issue 3).
func runFakeLM(ctx context.Context, e env, args []string) error {
	return errors.New("not implemented yet")
}
