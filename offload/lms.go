package offload

import (
	"context"
	"errors"
	"sync"

	"github.com/qaqueue/qaqueue/program"
)

// errCaptured ends a render: the capturing LM has the request.
var errCaptured = errors.New("request captured for the provider batch")

// errDeferred ends a replay: the answer did not parse and DSPy's next
// attempt goes to a further provider round (or nowhere: a cancelled
// batch's).
var errDeferred = errors.New("fallback deferred")

// schemaSupport is what the LM says of response schemas, so the program's
// attempts are the live path's (program.ResponseSchemaSupporter).
func schemaSupport(lm program.LM) bool {
	if s, ok := lm.(program.ResponseSchemaSupporter); ok {
		return s.SupportsResponseSchema()
	}
	return true
}

// capturingLM renders a stage: the LM cache answers what it holds, the
// first request it does not is kept and the run ends (errCaptured).
type capturingLM struct {
	lm    LM
	calls int
	req   *program.Request
}

func (c *capturingLM) Model() string                { return c.lm.Model() }
func (c *capturingLM) SupportsResponseSchema() bool { return schemaSupport(c.lm) }

func (c *capturingLM) Complete(ctx context.Context, req *program.Request) (*program.Completion, error) {
	c.calls++
	if comp, ok := c.lm.Cached(ctx, req); ok {
		return comp, nil
	}
	c.req = req
	return nil, errCaptured
}

// Accept passes what the program parsed (a cached answer) to the LM.
func (c *capturingLM) Accept(ctx context.Context, req *program.Request, comp *program.Completion) error {
	return c.lm.Accept(ctx, req, comp)
}

// replayingLM replays a stage from the provider's answer: the first call
// gets it; a later one (DSPy's fallback after a parse failure) calls the
// LM live, or ends the run (errDeferred) when live is false.
type replayingLM struct {
	lm     LM
	answer *program.Completion
	live   bool

	mu    sync.Mutex
	calls int
	// liveUsage are the usages of the live calls made.
	liveUsage []program.Usage
}

func (r *replayingLM) Model() string                { return r.lm.Model() }
func (r *replayingLM) SupportsResponseSchema() bool { return schemaSupport(r.lm) }

func (r *replayingLM) Complete(ctx context.Context, req *program.Request) (*program.Completion, error) {
	r.mu.Lock()
	r.calls++
	first := r.calls == 1
	r.mu.Unlock()
	if first {
		return r.answer, nil
	}
	if !r.live {
		return nil, errDeferred
	}
	comp, err := r.lm.Complete(ctx, req)
	if err == nil && !comp.CacheHit {
		r.mu.Lock()
		r.liveUsage = append(r.liveUsage, comp.Usage)
		r.mu.Unlock()
	}
	return comp, err
}

// Accept fills the LM cache with what the program parsed.
func (r *replayingLM) Accept(ctx context.Context, req *program.Request, comp *program.Completion) error {
	return r.lm.Accept(ctx, req, comp)
}
