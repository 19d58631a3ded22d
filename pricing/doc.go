// Package pricing owns the LM price table and the cost of usage, in integer
// micro-dollars.
//
// A [Table] maps DSPy model strings ("openai/gpt-4o-mini") to a [Price]: the
// live and the provider-batch price of input, cached input and output
// tokens, each in micro-dollars (1e-6 USD) per million tokens. [Default] is
// the built-in table (prices.go says where each price was read and when);
// [Parse] reads LM_PRICES, a JSON object of USD prices, over it.
//
// [Table.Cost] prices one usage block in DSPy's shape (program.Usage):
// prompt_tokens, completion_tokens and prompt_tokens_details.cached_tokens,
// as OpenAI reports them. Cached tokens are part of prompt_tokens, and are
// priced at the cached price instead of the input price. The arithmetic is in
// integers with a 128-bit intermediate, rounded once per call, half up, to
// whole micro-dollars; a cost that would not fit an int64 (above 9.2
// trillion dollars) saturates.
//
// A run's usage as a result holds it ({model: usage block} JSON, [ParseUsage])
// is priced over its models by [Table.CostOfModels] (nil when one has no
// price) and counted by kind by [Tokens]; [Add] sums nullable costs.
//
// Costs are integers so that sums over thousands of calls stay exact and
// idempotent: adding the same chunk's cost twice is visible, and no float
// error creeps into a batch's total.
package pricing
