package lmclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/prometheus/client_golang/prometheus"
)

// batchProviders have an OpenAI-compatible Files and Batches API taking
// chat completions request lines. An "openai/<model>" with LM_API_BASE is
// any OpenAI-compatible server; it must implement /files and /batches.
var batchProviders = []string{"azure", "groq", "openai"}

// Pages read by FindFile and FindBatch before giving up: 5 pages of 10,000
// files and 20 pages of 100 batches, newest first. A worker adopts what it
// created moments ago and recorded nowhere, so the newest suffice; a
// provider id once known is kept in Redis, not looked for again.
const (
	findFilePages  = 5
	filePageSize   = 10000
	findBatchPages = 20
	batchPageSize  = 100
)

// BatchAPI is the provider's Files and Batches API (openai-go v3), for
// provider batch offload: the same provider, base URL, key and error
// classification as the Client of the same Config. Every error from the
// provider is an *APIError classified as a live call's (Retryable,
// RetryAfter from a 429's Retry-After, permanent 4xx); the caller's context
// ending gives its error, wrapped. It is safe for concurrent use.
type BatchAPI struct {
	model    string
	endpoint string
	timeout  time.Duration
	api      openai.Client // for the streamed upload, through the raw path
	files    openai.FileService
	batches  openai.BatchService
	calls    *prometheus.CounterVec // op, outcome
}

// ProviderFile is a file at the provider.
type ProviderFile struct {
	ID, Filename, Purpose string
	Bytes                 int64
	CreatedAt             time.Time
}

// ProviderBatch is a batch at the provider. Status is OpenAI's
// ("validating", "in_progress", "finalizing", "completed", "failed",
// "expired", "cancelling", "cancelled"); Errors are its validation errors,
// "code: message (line N)".
type ProviderBatch struct {
	ID, Status, InputFileID, OutputFileID, ErrorFileID, CompletionWindow string
	Metadata                                                             map[string]string
	Counts                                                               struct{ Total, Completed, Failed int }
	Errors                                                               []string
	CreatedAt                                                            time.Time
}

// HasBatchAPI reports whether the provider of the DSPy model string model
// (the part before its first "/", none meaning openai) has an
// OpenAI-compatible batch API: what the API checks before it accepts a
// provider-mode batch, without the LM's key, which it may not hold.
func HasBatchAPI(model string) bool {
	name, _, found := strings.Cut(model, "/")
	if !found {
		name = "openai"
	}
	return slices.Contains(batchProviders, name)
}

// NewBatchAPI builds the batch API of cfg's provider (ResolveProvider), with
// a default HTTP client and no metrics; (*Client).BatchAPI shares a
// client's. A provider without an OpenAI-compatible batch API is a
// *ConfigError.
func NewBatchAPI(cfg Config) (*BatchAPI, error) {
	cfg = cfg.WithDefaults()
	prov, err := ResolveProvider(cfg.Model, cfg.APIBase, cfg.APIKey, cfg.AzureAPIVersion, cfg.LookupEnv)
	if err != nil {
		return nil, err
	}
	return newBatchAPI(cfg, prov, &http.Client{Transport: NewTransport()}, newBatchMetrics(nil))
}

// BatchAPI is the batch API of c's provider, over c's HTTP client and
// metrics registry. A provider without an OpenAI-compatible batch API is a
// *ConfigError.
func (c *Client) BatchAPI() (*BatchAPI, error) {
	return newBatchAPI(c.cfg, c.prov, c.hc, c.metrics.batchCalls)
}

func newBatchAPI(cfg Config, prov Provider, hc *http.Client, calls *prometheus.CounterVec) (*BatchAPI, error) {
	if !slices.Contains(batchProviders, prov.Name) {
		return nil, configErrorf("DSPY_MODEL=%q: provider %q has no OpenAI-compatible batch API (have one: %s, or openai/<model> with LM_API_BASE for a server that implements /files and /batches); use live mode",
			cfg.Model, prov.Name, strings.Join(batchProviders, ", "))
	}
	if prov.Name == "azure" {
		// Files and batches live under the resource's /openai root, not
		// under a deployment; the body's model names the deployment.
		if i := strings.LastIndex(prov.BaseURL, "/deployments/"); i >= 0 {
			prov.BaseURL = prov.BaseURL[:i]
		}
	}
	opts := requestOptions(prov, cfg.Model, hc)
	return &BatchAPI{
		model:    cfg.Model,
		endpoint: batchURL(prov),
		timeout:  cfg.Timeout,
		api:      openai.Client{Options: opts},
		files:    openai.NewFileService(opts...),
		batches:  openai.NewBatchService(opts...),
		calls:    calls,
	}, nil
}

// Endpoint is the endpoint of the provider's batches and of their request
// lines (BatchLine's url).
func (a *BatchAPI) Endpoint() string { return a.endpoint }

// do runs one metadata call, op (a metrics label), bounded by
// Config.Timeout, and classifies and counts its outcome.
func (a *BatchAPI) do(ctx context.Context, op string, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	return a.done(ctx, op, f(cctx))
}

// done classifies err as a live call's error, counts op's outcome and
// names op in the error.
func (a *BatchAPI) done(ctx context.Context, op string, err error) error {
	if err != nil {
		err = classifyTransport(ctx, a.model, err)
	}
	outcome := "ok"
	if err != nil {
		outcome = errorStatus(err)
	}
	a.calls.WithLabelValues(op, outcome).Inc()
	if err != nil {
		return fmt.Errorf("%s: %w", strings.ReplaceAll(op, "_", " "), err)
	}
	return nil
}

// UploadFile uploads body as a purpose=batch file named filename. The
// multipart request is written through a pipe as body is read, so the file
// is never held in memory. An error reading body is returned as it is.
func (a *BatchAPI) UploadFile(ctx context.Context, filename string, body io.Reader) (*ProviderFile, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	src := &errReader{r: body}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		pw.CloseWithError(writeUpload(mw, filename, src))
	}()
	var f openai.FileObject
	err := a.api.Post(ctx, "files", nil, &f, option.WithRequestBody(mw.FormDataContentType(), pr))
	// Unblock the writer when the request ended before reading it all.
	_ = pr.CloseWithError(errors.New("upload ended"))
	<-wrote
	if src.err != nil {
		return nil, fmt.Errorf("upload file: read body: %w", src.err)
	}
	if err := a.done(ctx, "upload_file", err); err != nil {
		return nil, err
	}
	return providerFile(&f), nil
}

// writeUpload writes the upload's form: purpose, then the file.
func writeUpload(mw *multipart.Writer, filename string, body io.Reader) error {
	if err := mw.WriteField("purpose", "batch"); err != nil {
		return err
	}
	part, err := mw.CreateFormFile("file", filename)
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, body); err != nil {
		return err
	}
	return mw.Close()
}

// errReader keeps the error of the reader it wraps, so a failure of the
// caller's body is told from one of the request.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// FindFile is the newest purpose=batch file named filename, or nil, nil
// when none is among the newest findFilePages×filePageSize files.
func (a *BatchAPI) FindFile(ctx context.Context, filename string) (*ProviderFile, error) {
	params := openai.FileListParams{Purpose: openai.String("batch"), Limit: openai.Int(filePageSize), Order: openai.FileListParamsOrderDesc}
	f, err := firstMatch(ctx, a, "find_file", findFilePages,
		func(ctx context.Context, after string) ([]openai.FileObject, bool, error) {
			if after != "" {
				params.After = openai.String(after)
			}
			page, err := a.files.List(ctx, params)
			if err != nil {
				return nil, false, err
			}
			return page.Data, page.HasMore, nil
		},
		func(f *openai.FileObject) bool { return f.Filename == filename },
		func(f *openai.FileObject) string { return f.ID })
	if f == nil || err != nil {
		return nil, err
	}
	return providerFile(f), nil
}

// CreateBatch creates a batch of inputFileID's chat completion requests
// with a 24 h window, tagged with metadata.
func (a *BatchAPI) CreateBatch(ctx context.Context, inputFileID string, metadata map[string]string) (*ProviderBatch, error) {
	var b *openai.Batch
	err := a.do(ctx, "create_batch", func(ctx context.Context) (err error) {
		b, err = a.batches.New(ctx, openai.BatchNewParams{
			InputFileID:      inputFileID,
			Endpoint:         openai.BatchNewParamsEndpoint(a.endpoint),
			CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
			Metadata:         shared.Metadata(metadata),
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return providerBatch(b), nil
}

// FindBatch is the newest batch whose metadata holds every pair of
// metadata, or nil, nil when none is among the newest
// findBatchPages×batchPageSize batches.
func (a *BatchAPI) FindBatch(ctx context.Context, metadata map[string]string) (*ProviderBatch, error) {
	params := openai.BatchListParams{Limit: openai.Int(batchPageSize)}
	b, err := firstMatch(ctx, a, "find_batch", findBatchPages,
		func(ctx context.Context, after string) ([]openai.Batch, bool, error) {
			if after != "" {
				params.After = openai.String(after)
			}
			page, err := a.batches.List(ctx, params)
			if err != nil {
				return nil, false, err
			}
			return page.Data, page.HasMore, nil
		},
		func(b *openai.Batch) bool { return holds(b.Metadata, metadata) },
		func(b *openai.Batch) string { return b.ID })
	if b == nil || err != nil {
		return nil, err
	}
	return providerBatch(b), nil
}

// firstMatch pages through a newest-first list (list: a page after the
// item id after, "" for the first, and whether more follow), at most pages
// pages, for the first item match accepts; nil, nil when none does.
func firstMatch[T any](ctx context.Context, a *BatchAPI, op string, pages int,
	list func(ctx context.Context, after string) ([]T, bool, error), match func(*T) bool, id func(*T) string) (*T, error) {
	after := ""
	for range pages {
		var found *T
		var more bool
		err := a.do(ctx, op, func(ctx context.Context) error {
			items, hasMore, err := list(ctx, after)
			if err != nil {
				return err
			}
			for i := range items {
				if match(&items[i]) {
					found = &items[i]
					return nil
				}
			}
			if more = hasMore && len(items) > 0; more {
				after = id(&items[len(items)-1])
			}
			return nil
		})
		if err != nil || found != nil || !more {
			return found, err
		}
	}
	return nil, nil
}

// holds reports whether have has every pair of want.
func holds(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// GetBatch is the batch id as the provider has it now.
func (a *BatchAPI) GetBatch(ctx context.Context, id string) (*ProviderBatch, error) {
	var b *openai.Batch
	err := a.do(ctx, "get_batch", func(ctx context.Context) (err error) {
		b, err = a.batches.Get(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return providerBatch(b), nil
}

// CancelBatch asks the provider to cancel batch id; it goes through
// "cancelling" to "cancelled", keeping what it finished.
func (a *BatchAPI) CancelBatch(ctx context.Context, id string) (*ProviderBatch, error) {
	var b *openai.Batch
	err := a.do(ctx, "cancel_batch", func(ctx context.Context) (err error) {
		b, err = a.batches.Cancel(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return providerBatch(b), nil
}

// OpenFile streams file id's content; the caller closes it. Reading is
// bounded by ctx only: an output file may be hundreds of megabytes.
func (a *BatchAPI) OpenFile(ctx context.Context, id string) (io.ReadCloser, error) {
	res, err := a.files.Content(ctx, id)
	if err := a.done(ctx, "open_file", err); err != nil {
		return nil, err
	}
	if res == nil || res.Body == nil {
		return nil, fmt.Errorf("open file: %w", &APIError{Code: CodeTruncated, Message: "file content has no body", Model: a.model})
	}
	return res.Body, nil
}

// DeleteFile deletes file id; a file already gone (404) is success.
func (a *BatchAPI) DeleteFile(ctx context.Context, id string) error {
	err := a.do(ctx, "delete_file", func(ctx context.Context) error {
		_, err := a.files.Delete(ctx, id)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil
		}
		return err
	})
	return err
}

func providerFile(f *openai.FileObject) *ProviderFile {
	return &ProviderFile{ID: f.ID, Filename: f.Filename, Purpose: string(f.Purpose), Bytes: f.Bytes, CreatedAt: time.Unix(f.CreatedAt, 0).UTC()}
}

func providerBatch(b *openai.Batch) *ProviderBatch {
	p := &ProviderBatch{
		ID: b.ID, Status: string(b.Status), InputFileID: b.InputFileID, OutputFileID: b.OutputFileID,
		ErrorFileID: b.ErrorFileID, CompletionWindow: b.CompletionWindow, Metadata: maps.Clone(map[string]string(b.Metadata)),
		CreatedAt: time.Unix(b.CreatedAt, 0).UTC(),
	}
	p.Counts.Total, p.Counts.Completed, p.Counts.Failed = int(b.RequestCounts.Total), int(b.RequestCounts.Completed), int(b.RequestCounts.Failed)
	for _, e := range b.Errors.Data {
		s := e.Code + ": " + e.Message
		if e.Line > 0 {
			s += fmt.Sprintf(" (line %d)", e.Line)
		}
		p.Errors = append(p.Errors, s)
	}
	return p
}
