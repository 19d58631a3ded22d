// Package lmclient is the LM client of qaqueue: it satisfies the program
// package's LM interface over the OpenAI chat completions wire protocol
// (github.com/openai/openai-go/v3), JSON and SSE streaming, for any provider
// LiteLLM routes by a DSPy model string ("openai/gpt-4o-mini",
// "anthropic/…", "azure/<deployment>", …; see ResolveProvider).
//
// In front of the provider sit
//
//   - a cache keyed exactly as DSPy keys its own (SPEC §7.2; CacheKey), read
//     memory (golang-lru) → disk (SQLite, WAL, size-bounded LRU eviction,
//     safe for several processes) → Redis (shared, every entry with a TTL),
//     filled back upward on a hit. The disk and Redis stores are split by
//     endpoint, a namespace per model and base URL (EndpointNamespace), so
//     two servers answering to one model name never share answers;
//     ClearDiskCache and ClearRedisCache empty them. Complete never writes
//     the cache: the program calls Accept for an answer it parsed, so a
//     garbled answer is never replayed. A hit reports CacheHit, empty
//     usage, and is replayed through OnDelta when the caller streams;
//   - a rate limit shared by every worker through Redis (requests and tokens
//     per minute, one Lua script) and paced evenly (a bucket of half a
//     second's budget, since providers enforce per-minute limits per
//     second), which serves interactive callers before batch ones, honours
//     a fleet-wide cool-down set by a provider 429 with Retry-After, and
//     returns *RateLimitedError instead of waiting longer than
//     Config.MaxWait. With no limit set a call sends Redis nothing: each
//     client mirrors the cool-down, announced on a pub/sub channel. Like
//     the cache, it is kept per endpoint.
//
// For provider batch offload, BatchLine writes a request as a batch input
// line whose body is the live body, ParseBatchLine reads an output or error
// line as a live answer or error, Cached is the cache read alone, and
// BatchAPI is the provider's Files and Batches API (openai, azure, groq).
//
// With Deps.Tracing each Complete is a "chat <model>" span carrying
// OpenTelemetry's GenAI attributes, never the messages or the answer
// (tracing.go).
//
// The client never retries: failures come back as *APIError with
// Retryable and RetryAfter, and the queue decides. It never reads the
// environment either: provider variables come through Config.LookupEnv.
package lmclient
