package programs

import (
	"context"

	"github.com/qaqueue/qaqueue/program"
)

// inputsCacheSize bounds the versions whose inputs a process keeps: a few
// hundred bytes each, so many more than the compiled versions it holds.
const inputsCacheSize = 4096

// Inputs returns the input fields of program name's version: what the API
// checks a submit against. They are kept in an LRU of their own, apart
// from the compiled versions (Program), so an API taking jobs for more
// versions than CacheVersions reads and compiles each once, not on every
// submit. ("qa", "") is the fallback's built-in program.
func (r *Registry) Inputs(ctx context.Context, name, version string) ([]program.Field, error) {
	key := cacheKey(name, version)
	if in, ok := r.inputs.Get(key); ok {
		return in, nil
	}
	c, err := r.Program(ctx, name, version)
	if err != nil {
		return nil, err
	}
	r.inputs.Add(key, c.Built.Inputs)
	return c.Built.Inputs, nil
}
