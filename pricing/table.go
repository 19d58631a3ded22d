package pricing

import (
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Price is one model's prices, in micro-dollars (1e-6 USD) per million
// tokens: $2.50 per million is 2_500_000. Input prices a prompt's uncached
// tokens, CachedInput those the provider served from its prompt cache,
// Output the completion's (reasoning included). The Batch prices apply to a
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

// Lookup returns the price of model, a DSPy model string
// ("provider/name"). For the model's name, then for the name without a
// date suffix (-YYYY-MM-DD, OpenAI's snapshots, or -YYYYMMDD, Anthropic's),
// it takes the first of:
//
//  1. the key provider/name, for a model with a provider;
//  2. the bare key name, which stands for any provider without its own
//     entry ("hosted_vllm/my-model" finds "my-model");
//  3. for a bare model, the one key of any provider with that name
//     ("gpt-4o-mini" finds "openai/gpt-4o-mini").
//
// So "gpt-4o-mini-2024-07-18" finds "openai/gpt-4o-mini", while a snapshot
// priced apart from its family has a key of its own, found first. Rule 3
// finding two keys ("gpt-4o-mini" with openai/ and azure/ priced) is
// ambiguous, and the model unknown: a wrong price is worse than none. A
// model never takes another provider's price ("azure/gpt-4o-mini" is not
// "openai/gpt-4o-mini"), and a name never matches by prefix ("gpt-4o-mini"
// is not "gpt-4o").
func (t Table) Lookup(model string) (Price, bool) {
	provider, name := splitModel(model)
	if p, ok := t.lookup(provider, name); ok {
		return p, true
	}
	if family := dateSuffix.ReplaceAllString(name, ""); family != name {
		return t.lookup(provider, family)
	}
	return Price{}, false
}

// dateSuffix is a snapshot's date: OpenAI's -2024-07-18, Anthropic's
// -20250929.
var dateSuffix = regexp.MustCompile(`-(20\d\d-[01]\d-[0-3]\d|20\d\d[01]\d[0-3]\d)$`)

// lookup applies Lookup's rules to one name.
func (t Table) lookup(provider, name string) (Price, bool) {
	if provider != "" {
		if p, ok := t.prices[provider+"/"+name]; ok {
			return p, true
		}
	}
	if p, ok := t.prices[name]; ok {
		return p, true
	}
	if provider != "" {
		return Price{}, false
	}
	var found Price
	n := 0
	for key, p := range t.prices {
		if _, kn := splitModel(key); kn == name {
			found, n = p, n+1
		}
	}
	return found, n == 1
}

// splitModel splits a DSPy model string at its first slash into provider
// and model name; a bare name has no provider.
func splitModel(model string) (provider, name string) {
	if p, n, ok := strings.Cut(model, "/"); ok {
		return p, n
	}
	return "", model
}
