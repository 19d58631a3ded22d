package pricing

import (
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Price is one model's prices, in micro-dollars (1e-6 USD) per million
// tokens: $2.50 per million is 2_500_000. The Batch prices apply to a
// provider's batch API (OpenAI's Batch, Anthropic's Message Batches).
type Price struct {
	Input, Output, CachedInput, BatchInput, BatchOutput, BatchCachedInput int64
}

// Table is a price table: model → [Price]. The zero Table knows no model;
// use [Default] or [Parse]. A Table is immutable, so it is safe to share.
type Table struct {
	prices map[string]Price
}

// Default returns the built-in table (see prices.go for the prices, their
// source and date).
func Default() Table {
	return Table{prices: maps.Clone(builtin)}
}

// Models returns the table's model keys, sorted.
func (t Table) Models() []string {
	return slices.Sorted(maps.Keys(t.prices))
}

// Lookup returns the price of model, a DSPy model string. It matches, in
// order:
//
//  1. the key itself ("openai/gpt-4o-mini");
//  2. the one key with the same model name whose provider is the same, or
//     either side has none: "gpt-4o-mini" finds "openai/gpt-4o-mini", and
//     "hosted_vllm/my-model" finds a key "my-model";
//  3. rule 2 for the name without a date suffix (-YYYY-MM-DD, OpenAI's
//     snapshots, or -YYYYMMDD, Anthropic's): "gpt-4o-mini-2024-07-18"
//     finds "openai/gpt-4o-mini".
//
// A rule that finds two keys ("gpt-4o-mini" with both openai/ and azure/
// priced) is ambiguous, and the model is unknown: a wrong price is worse
// than none. A model under another provider ("azure/gpt-4o-mini") never
// takes a different provider's price, and a name is never matched by prefix
// ("gpt-4o-mini" is not "gpt-4o"), so a snapshot priced apart from its
// family needs its own key, which rule 1 then finds first.
func (t Table) Lookup(model string) (Price, bool) {
	if p, ok := t.prices[model]; ok {
		return p, true
	}
	provider, name := splitModel(model)
	key, n := t.match(provider, name)
	if n == 0 {
		if family := dateSuffix.ReplaceAllString(name, ""); family != name {
			key, n = t.match(provider, family)
		}
	}
	if n != 1 {
		return Price{}, false
	}
	return t.prices[key], true
}

// dateSuffix is a snapshot's date: OpenAI's -2024-07-18, Anthropic's
// -20250929.
var dateSuffix = regexp.MustCompile(`-(20\d\d-[01]\d-[0-3]\d|20\d\d[01]\d[0-3]\d)$`)

// match returns a key that rule 2 of Lookup finds for provider and name,
// and how many keys it finds.
func (t Table) match(provider, name string) (string, int) {
	var found string
	n := 0
	for key := range t.prices {
		kp, kn := splitModel(key)
		if kn == name && (kp == provider || kp == "" || provider == "") {
			found, n = key, n+1
		}
	}
	return found, n
}

// splitModel splits a DSPy model string at its first slash into provider
// and model name; a bare name has no provider.
func splitModel(model string) (provider, name string) {
	if p, n, ok := strings.Cut(model, "/"); ok {
		return p, n
	}
	return "", model
}
