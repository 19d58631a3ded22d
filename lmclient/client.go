package lmclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/rs/zerolog"

	"github.com/qaqueue/qaqueue/program"
)

// Client calls one model through an OpenAI-compatible API, with the cache
// layers and the shared rate limit in front. It satisfies program.LM and is
// safe for concurrent use; one Client serves a whole worker process.
type Client struct {
	cfg       Config
	prov      Provider
	stores    CacheStores
	reasoning bool
	key       cacheKeyParts // CacheKey's fixed pieces
	api       openai.Client
	hc        *http.Client
	cache     *layeredCache
	limiter   *limiter
	metrics   *metrics
	log       zerolog.Logger
	// tracer is nil when tracing is off (tracing.go).
	tracer *chatTracer
}

var _ program.LM = (*Client)(nil)

// New validates cfg, resolves the provider and opens the enabled cache
// layers. Close releases them.
func New(cfg Config, deps Deps) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(deps); err != nil {
		return nil, err
	}
	stores, prov, err := StoresFor(cfg)
	if err != nil {
		return nil, err
	}
	var log zerolog.Logger // the zero Logger writes nothing
	if deps.Logger != nil {
		log = deps.Logger.With().Str("component", "lmclient").Str("model", cfg.Model).Logger()
	}
	hc := deps.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: NewTransport()}
	}
	c := &Client{
		cfg:       cfg,
		prov:      prov,
		stores:    stores,
		reasoning: IsReasoningModel(cfg.Model),
		metrics:   newMetrics(deps.Registerer),
		log:       log,
		tracer:    newChatTracer(deps.Tracing, prov),
	}
	// Only Options is set: the client posts pre-encoded bodies (Client.Post)
	// and uses none of openai-go's typed services, which would also bring its
	// environment defaults.
	c.hc = hc
	c.api = openai.Client{Options: requestOptions(prov, cfg.Model, hc)}
	c.cache, err = openCache(cfg, stores, deps, log, c.metrics)
	if err != nil {
		return nil, err
	}
	c.limiter = newLimiter(cfg, stores.Namespace, deps.Redis, c.metrics, log)
	return c, nil
}

// requestOptions configures openai-go for prov without its environment
// defaults (it would read OPENAI_* itself) and without its retries: the
// queue owns them. Every HTTP error becomes an *APIError naming model.
func requestOptions(prov Provider, model string, hc *http.Client) []option.RequestOption {
	opts := []option.RequestOption{
		option.WithHTTPClient(hc),
		option.WithBaseURL(prov.BaseURL + "/"),
		option.WithMaxRetries(0),
		option.WithHeader("User-Agent", "qaqueue-lmclient"),
		option.WithMiddleware(errorMiddleware(model)),
	}
	if prov.Name == "azure" {
		opts = append(opts, option.WithQuery("api-version", prov.AzureAPIVersion),
			option.WithHeader("api-key", prov.APIKey), option.WithHeaderDel("Authorization"))
	} else if prov.APIKey != "" {
		opts = append(opts, option.WithAPIKey(prov.APIKey))
	} else {
		// A keyless local server: send no Authorization header at all.
		opts = append(opts, option.WithHeaderDel("Authorization"))
	}
	return opts
}

// Model is the DSPy model string; it keys usage.
func (c *Client) Model() string { return c.cfg.Model }

// Provider is the resolved provider (base URL, wire model); APIKey included.
func (c *Client) Provider() Provider { return c.prov }

// CacheStores says where the client's disk and Redis cache layers keep
// its entries.
func (c *Client) CacheStores() CacheStores { return c.stores }

// Close stops the limiter following the fleet's cool-down and releases the
// cache layers.
func (c *Client) Close() error {
	c.limiter.close()
	return c.cache.close()
}

// Complete makes one chat call: from the cache when it holds the answer,
// else from the provider after the shared rate limit admits it. With
// req.OnDelta set the call streams, and a cache hit is replayed through
// OnDelta too. Errors are *APIError, *RateLimitedError, *ConfigError or the
// context's error, wrapped. With Deps.Tracing the call is a span.
func (c *Client) Complete(ctx context.Context, req *program.Request) (*program.Completion, error) {
	if c.tracer != nil {
		return c.completeTraced(ctx, req)
	}
	return c.complete(ctx, req, nil)
}

// complete is Complete; model, when not nil, receives the model the
// provider says answered.
func (c *Client) complete(ctx context.Context, req *program.Request, model *string) (*program.Completion, error) {
	if req == nil || len(req.Messages) == 0 {
		return nil, errors.New("complete: request has no messages")
	}
	key := c.keyFor(req)
	if comp, ok := c.cachedAt(ctx, req, key); ok {
		if req.OnDelta != nil {
			replay(comp.Text, req.OnDelta)
		}
		return comp, nil
	}
	est := estimateTokens(req, c.cfg.MaxTokens)
	if c.cfg.TPM > 0 && est > int64(c.cfg.TPM) {
		est = int64(c.cfg.TPM) // one call may take at most the whole minute's budget
	}
	if err := c.limiter.acquire(ctx, req.Priority, est); err != nil {
		return nil, err
	}
	comp, err := c.call(ctx, req, model)
	if err != nil {
		c.metrics.calls.WithLabelValues(errorStatus(err)).Inc()
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests && ae.RetryAfter > 0 {
			c.limiter.setCooldown(ctx, min(ae.RetryAfter, maxCooldown))
		}
		c.limiter.adjust(ctx, -est) // nothing was generated; roughly give it back
		return nil, err
	}
	comp.CacheKey = key
	c.metrics.callsOK.Inc()
	p, cpl := usageTokens(comp.Usage)
	c.metrics.promptTokens.Add(float64(p))
	c.metrics.completionTokens.Add(float64(cpl))
	if p+cpl > 0 {
		c.limiter.adjust(ctx, p+cpl-est)
	}
	return comp, nil
}

// Cached is the cache read Complete makes first, alone: the answer to req
// from the first layer holding it (memory → disk → Redis, filling the layers
// above), with CacheHit and CacheKey set and empty usage. It makes no
// provider call and never streams. ok is false on a miss, for a NoCache or
// SkipCacheRead request, and when no cache layer is enabled.
func (c *Client) Cached(ctx context.Context, req *program.Request) (*program.Completion, bool) {
	if req == nil || len(req.Messages) == 0 {
		return nil, false
	}
	return c.cachedAt(ctx, req, c.keyFor(req))
}

// cachedAt reads the cache at key, req's key from keyFor ("" when the cache
// is off for req).
func (c *Client) cachedAt(ctx context.Context, req *program.Request, key string) (*program.Completion, bool) {
	if key == "" || req.SkipCacheRead {
		return nil, false
	}
	e, ok := c.cache.get(ctx, key)
	if !ok {
		return nil, false
	}
	return &program.Completion{Text: e.Text, FinishReason: e.FinishReason, Usage: program.Usage{}, CacheHit: true, CacheKey: key}, true
}

// Accept stores c, the parsed answer to req, in every enabled cache layer.
// Completions that are never accepted are never cached. Cache hits, NoCache
// requests and completions without a finish reason (a stream that did not
// end normally) are not stored. A layer's failure is returned after the
// others were tried; callers may log it and go on.
func (c *Client) Accept(ctx context.Context, req *program.Request, comp *program.Completion) error {
	key, ok := c.acceptKey(req, comp)
	if !ok {
		return nil
	}
	if err := c.cache.put(ctx, key, entry{Text: comp.Text, FinishReason: comp.FinishReason}); err != nil {
		return fmt.Errorf("accept completion: %w", err)
	}
	return nil
}

// CacheWrite is an entry of the Redis cache layer for a caller to write on
// its own Redis write (SET Key Value PX TTL, no PX for a TTL of 0), a
// round trip fewer: see AcceptWrite. Its key and contents are the cache's.
type CacheWrite struct {
	Key   string
	Value []byte
	TTL   time.Duration
}

// AcceptWrite is Accept with the Redis layer's write handed to the caller,
// who writes it on the queue's Redis with a write of its own: the other
// layers are written now. ok is false when the caller has nothing to write
// (nothing to cache, no Redis layer, or one on a Redis of its own:
// Deps.CacheRedis); then Accept's writes are done.
func (c *Client) AcceptWrite(ctx context.Context, req *program.Request, comp *program.Completion) (w CacheWrite, ok bool, err error) {
	key, ok := c.acceptKey(req, comp)
	if !ok {
		return CacheWrite{}, false, nil
	}
	w, ok, err = c.cache.putHandingOff(ctx, key, entry{Text: comp.Text, FinishReason: comp.FinishReason})
	if err != nil {
		err = fmt.Errorf("accept completion: %w", err)
	}
	return w, ok, err
}

// acceptKey is the key Accept stores comp under, or false when comp is not
// to be cached.
func (c *Client) acceptKey(req *program.Request, comp *program.Completion) (string, bool) {
	if req == nil || comp == nil || comp.CacheHit || comp.FinishReason == "" {
		return "", false
	}
	key := comp.CacheKey
	if key == "" || req.NoCache {
		key = c.keyFor(req)
	}
	return key, key != ""
}

// maxCooldown caps the fleet-wide pause one 429 can impose; the failing call
// still reports the full RetryAfter to its own caller.
const maxCooldown = 5 * time.Minute

// keyFor is the cache key of req, or "" when the cache is off for it. As in
// DSPy, a request whose key cannot be computed skips the cache.
func (c *Client) keyFor(req *program.Request) string {
	if req.NoCache || c.cache.empty() {
		return ""
	}
	key, err := c.CacheKey(req)
	if err != nil {
		c.log.Warn().Err(err).Msg("cache key: skipping the cache")
		return ""
	}
	return key
}

// replay delivers a cached text in a few chunks, split after spaces, so a
// stream consumer sees a cached answer the way it sees a live one.
func replay(text string, onDelta func(string)) {
	const chunk = 64
	for len(text) > chunk {
		cut := strings.LastIndexAny(text[:chunk], " \n")
		if cut <= 0 {
			cut = chunk - 1
			for cut > 0 && !isRuneStart(text[cut+1]) {
				cut--
			}
		}
		onDelta(text[:cut+1])
		text = text[cut+1:]
	}
	if text != "" {
		onDelta(text)
	}
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// estimateTokens guesses a call's tokens before it is made, for TPM: the
// prompt at 4 characters a token, plus MaxTokens or 256 for the answer. The
// limiter is corrected with the real usage afterwards.
func estimateTokens(req *program.Request, maxTokens *int) int64 {
	n := 0
	for _, m := range req.Messages {
		n += len(m.Content)
	}
	out := int64(256)
	if maxTokens != nil && int64(*maxTokens) < out {
		out = int64(*maxTokens)
	}
	return int64(n+3)/4 + out
}

// errorStatus is the metrics label of a failed call.
func errorStatus(err error) string {
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.Status == 0:
		return ae.Code
	case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
		return "rate_limited"
	case errors.As(err, &ae) && ae.Status >= 500:
		return "server_error"
	case errors.As(err, &ae):
		return "client_error"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "other"
}
