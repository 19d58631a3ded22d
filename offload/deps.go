package offload

import (
	"context"
	"io"

	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/rs/zerolog"
)

// LM is what the runner needs of the LM beyond program.LM: the cache
// lookup alone, and a request as a provider batch line and back
// (lmclient.Client).
type LM interface {
	program.LM
	// Cached answers req from the LM cache, if it can.
	Cached(ctx context.Context, req *program.Request) (*program.Completion, bool)
	// BatchLine is req as one line of a provider batch file.
	BatchLine(customID string, req *program.Request) ([]byte, error)
	// ParseBatchLine reads one line of a provider output or error file;
	// a line the provider answered with an error gives it typed as a live
	// call's (lmclient.Retryable tells).
	ParseBatchLine(line []byte) (customID string, comp *program.Completion, err error)
}

// Provider is the provider's batch API (lmclient.BatchAPI). Every error is
// typed as a live call's (lmclient.Retryable tells).
type Provider interface {
	UploadFile(ctx context.Context, filename string, body io.Reader) (*lmclient.ProviderFile, error)
	FindFile(ctx context.Context, filename string) (*lmclient.ProviderFile, error)
	CreateBatch(ctx context.Context, inputFileID string, metadata map[string]string) (*lmclient.ProviderBatch, error)
	FindBatch(ctx context.Context, metadata map[string]string) (*lmclient.ProviderBatch, error)
	GetBatch(ctx context.Context, id string) (*lmclient.ProviderBatch, error)
	CancelBatch(ctx context.Context, id string) (*lmclient.ProviderBatch, error)
	OpenFile(ctx context.Context, id string) (io.ReadCloser, error)
	DeleteFile(ctx context.Context, id string) error
}

// Programs gives the compiled program a batch's spec names (the worker's
// program source).
type Programs interface {
	Program(ctx context.Context, name, version string) (*programfile.Compiled, error)
}

// Prices prices a call's usage (pricing.Table): at the batch price or the
// live one; ok false for a model without a price.
type Prices interface {
	Cost(model string, u program.Usage, batch bool) (micros int64, ok bool)
}

// Deps are what the runner runs with.
type Deps struct {
	Batches  *batches.Store
	Programs Programs
	LM       LM
	Provider Provider
	// Prices may be nil: every cost is then unknown.
	Prices Prices
	Log    zerolog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// Completions observes each item the runner completes, as recorded
	// (worker.Metrics: the usage metrics, which the worker's live items
	// feed too); nil: none.
	Completions Completions
}

// Completions observes completed items: key is the API key's name.
type Completions interface {
	ObserveCompletion(key string, r *jobs.Result)
}
