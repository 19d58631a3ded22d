package worker

import (
	"context"
	"sync"
)

// flight shares one run among items asking the same (the same spec.Hash:
// program, inputs, options) at the same time in this process: the LM cache
// serves repeats that come later, but identical items running side by side
// would all miss it. A follower whose leader failed runs itself, so one
// item's cancel or error never becomes another's.
type flight struct {
	mu    sync.Mutex
	calls map[string]*flightCall
}

type flightCall struct {
	done chan struct{}
	res  *RunResult
	err  error
}

// do runs run, or waits for the run of another item with the same key; an
// empty key (an item bypassing the cache) runs alone.
func (f *flight) do(ctx context.Context, key string, run func(context.Context) (*RunResult, error)) (*RunResult, error) {
	if key == "" {
		return run(ctx)
	}
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]*flightCall{}
	}
	if c, ok := f.calls[key]; ok {
		f.mu.Unlock()
		select {
		case <-c.done:
			if c.err == nil {
				return c.res, nil
			}
			return run(ctx)
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	c := &flightCall{done: make(chan struct{})}
	f.calls[key] = c
	f.mu.Unlock()
	c.res, c.err = run(ctx)
	f.mu.Lock()
	delete(f.calls, key)
	f.mu.Unlock()
	close(c.done)
	return c.res, c.err
}
