package main

import (
	"context"
	"errors"
)

// runPrompt and runParse are owned by the program work (issue 2).
func runPrompt(ctx context.Context, e env, args []string) error {
	return errors.New("not implemented yet")
}

func runParse(ctx context.Context, e env, args []string) error {
	return errors.New("not implemented yet")
}
