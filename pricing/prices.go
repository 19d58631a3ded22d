package pricing

// builtin is the default table, in micro-dollars per million tokens
// ($2.50 is 2_500_000). Text tokens only; a key per family alias, which
// Lookup also finds for a bare name and for a dated snapshot.
//
// OpenAI (checked 2026-12-06): gpt-5-mini and gpt-5-nano from their model
// pages, https://developers.openai.com/api/docs/models/<model>; the others
// from the pricing page, https://developers.openai.com/api/docs/pricing, as
// two dated copies transcribe it (2026-03, https://deploybase.ai/articles/
// openai-pricing, and 2026-06-22), which agree. The Batch API halves every
// price, cached input included.
//
// Anthropic (checked 2026-12-06) from
// https://platform.claude.com/docs/en/about-claude/pricing ("Cache hits and
// refreshes" is the cached price; Opus 4.5 to 4.8 share one price); Message
// Batches halve every price. Cache writes (1.25× input) are not told apart
// by an OpenAI-shaped usage block, so they count as input: a cost for Claude
// with prompt caching is a little low.
//
// Gemini 2.5 Flash (checked 2026-12-06; text, image and video input, audio
// costs more) from https://ai.google.dev/gemini-api/docs/pricing as two
// copies (2026-06-22 and later) transcribe it, which agree; its Batch API
// is half price.
//
// Left out rather than guessed: Gemini 2.5 Pro, whose price rises for
// prompts over 200k tokens, which one Price cannot express; Claude models
// whose model ids were not checked (Opus 5). LM_PRICES adds any of them.
var builtin = map[string]Price{
	"openai/gpt-4o":       halfForBatch(2_500_000, 1_250_000, 10_000_000),
	"openai/gpt-4o-mini":  halfForBatch(150_000, 75_000, 600_000),
	"openai/gpt-4.1":      halfForBatch(2_000_000, 500_000, 8_000_000),
	"openai/gpt-4.1-mini": halfForBatch(400_000, 100_000, 1_600_000),
	"openai/gpt-4.1-nano": halfForBatch(100_000, 25_000, 400_000),
	"openai/o3":           halfForBatch(2_000_000, 500_000, 8_000_000),
	"openai/o4-mini":      halfForBatch(1_100_000, 275_000, 4_400_000),
	"openai/gpt-5":        halfForBatch(1_250_000, 125_000, 10_000_000),
	"openai/gpt-5-mini":   halfForBatch(250_000, 25_000, 2_000_000),
	"openai/gpt-5-nano":   halfForBatch(50_000, 5_000, 400_000),

	"anthropic/claude-opus-4-5":   halfForBatch(5_000_000, 500_000, 25_000_000),
	"anthropic/claude-opus-4-6":   halfForBatch(5_000_000, 500_000, 25_000_000),
	"anthropic/claude-opus-4-7":   halfForBatch(5_000_000, 500_000, 25_000_000),
	"anthropic/claude-opus-4-8":   halfForBatch(5_000_000, 500_000, 25_000_000),
	"anthropic/claude-sonnet-4-5": halfForBatch(3_000_000, 300_000, 15_000_000),
	"anthropic/claude-sonnet-4-6": halfForBatch(3_000_000, 300_000, 15_000_000),
	"anthropic/claude-haiku-4-5":  halfForBatch(1_000_000, 100_000, 5_000_000),

	"gemini/gemini-2.5-flash": halfForBatch(300_000, 30_000, 2_500_000),
}

// halfForBatch is a live price whose batch price is half of it, as OpenAI's,
// Anthropic's and Google's are.
func halfForBatch(input, cachedInput, output int64) Price {
	return Price{
		Input: input, CachedInput: cachedInput, Output: output,
		BatchInput: half(input), BatchCachedInput: half(cachedInput), BatchOutput: half(output),
	}
}
