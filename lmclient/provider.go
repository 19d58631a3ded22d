package lmclient

import (
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Provider is where and how one DSPy model string is called.
type Provider struct {
	// Name is the LiteLLM provider prefix ("openai", "azure", …).
	Name string
	// BaseURL is the OpenAI-compatible base the chat/completions path is
	// appended to (for Azure, the deployment URL).
	BaseURL string
	// APIKey is the key sent; empty for keyless local servers.
	APIKey string
	// WireModel is the "model" value in the HTTP body: the model string
	// without its provider prefix.
	WireModel string
	// AzureAPIVersion is the api-version query parameter (Azure only).
	AzureAPIVersion string
}

// providerSpec is what is known of one provider.
type providerSpec struct {
	base     string   // default base URL
	baseEnvs []string // variables that override the base, in order
	keyEnvs  []string // variables holding the key, in order
	keyless  bool     // a local server: no key needed
	needBase bool     // no default base: LM_API_BASE (or baseEnvs) required
}

var providers = map[string]providerSpec{
	"openai":       {base: "https://api.openai.com/v1", baseEnvs: []string{"OPENAI_BASE_URL", "OPENAI_API_BASE"}, keyEnvs: []string{"OPENAI_API_KEY"}},
	"anthropic":    {base: "https://api.anthropic.com/v1", baseEnvs: []string{"ANTHROPIC_API_BASE"}, keyEnvs: []string{"ANTHROPIC_API_KEY"}},
	"gemini":       {base: "https://generativelanguage.googleapis.com/v1beta/openai", keyEnvs: []string{"GEMINI_API_KEY", "GOOGLE_API_KEY"}},
	"groq":         {base: "https://api.groq.com/openai/v1", baseEnvs: []string{"GROQ_API_BASE"}, keyEnvs: []string{"GROQ_API_KEY"}},
	"together_ai":  {base: "https://api.together.xyz/v1", baseEnvs: []string{"TOGETHER_AI_API_BASE"}, keyEnvs: []string{"TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "TOGETHER_AI_API_KEY"}},
	"openrouter":   {base: "https://openrouter.ai/api/v1", baseEnvs: []string{"OPENROUTER_API_BASE"}, keyEnvs: []string{"OPENROUTER_API_KEY", "OR_API_KEY"}},
	"deepseek":     {base: "https://api.deepseek.com/v1", baseEnvs: []string{"DEEPSEEK_API_BASE"}, keyEnvs: []string{"DEEPSEEK_API_KEY"}},
	"mistral":      {base: "https://api.mistral.ai/v1", baseEnvs: []string{"MISTRAL_API_BASE"}, keyEnvs: []string{"MISTRAL_API_KEY"}},
	"fireworks_ai": {base: "https://api.fireworks.ai/inference/v1", baseEnvs: []string{"FIREWORKS_API_BASE"}, keyEnvs: []string{"FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY", "FIREWORKSAI_API_KEY"}},
	"ollama":       {base: "http://localhost:11434/v1", baseEnvs: []string{"OLLAMA_API_BASE"}, keyless: true},
	"ollama_chat":  {base: "http://localhost:11434/v1", baseEnvs: []string{"OLLAMA_API_BASE"}, keyless: true},
	"hosted_vllm":  {baseEnvs: []string{"HOSTED_VLLM_API_BASE"}, keyEnvs: []string{"HOSTED_VLLM_API_KEY"}, keyless: true, needBase: true},
	"azure":        {baseEnvs: []string{"AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"}, keyEnvs: []string{"AZURE_API_KEY", "AZURE_OPENAI_API_KEY"}, needBase: true},
}

// ProviderNames lists the known provider prefixes, sorted.
func ProviderNames() []string {
	out := make([]string, 0, len(providers))
	for n := range providers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ProviderInfo describes one provider for people: the README's table and
// the CLI's help are checked against it.
type ProviderInfo struct {
	// Name is the prefix of DSPY_MODEL, as in "openai/gpt-4o-mini".
	Name string
	// DefaultBase is the base URL used when no variable sets one; empty
	// when one must be set.
	DefaultBase string
	// BaseVars set the base URL when LM_API_BASE is unset, first set wins.
	BaseVars []string
	// KeyVars hold the key when LM_API_KEY is unset, first set wins.
	KeyVars []string
	// Keyless is a local server that needs no key.
	Keyless bool
}

// Providers describes every known provider, sorted by name.
func Providers() []ProviderInfo {
	out := make([]ProviderInfo, 0, len(providers))
	for _, n := range ProviderNames() {
		s := providers[n]
		out = append(out, ProviderInfo{Name: n, DefaultBase: s.base, BaseVars: slices.Clone(s.baseEnvs),
			KeyVars: slices.Clone(s.keyEnvs), Keyless: s.keyless})
	}
	return out
}

// ResolveProvider maps a DSPy model string to a Provider, as LiteLLM routes
// it: the part before the first "/" is the provider (none means openai), the
// rest is the wire model. apiBase and apiKey (LM_API_BASE, LM_API_KEY) win
// over the provider's own variables, read through lookupEnv; azureAPIVersion
// falls back to AZURE_API_VERSION. The error names what to set.
func ResolveProvider(model, apiBase, apiKey, azureAPIVersion string, lookupEnv func(string) (string, bool)) (Provider, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	name, wire, found := strings.Cut(model, "/")
	if !found {
		name, wire = "openai", model
	}
	if wire == "" {
		return Provider{}, configErrorf("DSPY_MODEL=%q has no model name after the provider: set DSPY_MODEL=provider/model", model)
	}
	spec, ok := providers[name]
	if !ok {
		return Provider{}, configErrorf("DSPY_MODEL=%q: unknown provider %q (known: %s); for any OpenAI-compatible server use openai/<model> with LM_API_BASE",
			model, name, strings.Join(ProviderNames(), ", "))
	}
	p := Provider{Name: name, WireModel: wire, APIKey: apiKey, BaseURL: apiBase}
	if p.BaseURL == "" {
		p.BaseURL = firstEnv(lookupEnv, spec.baseEnvs)
	}
	if p.BaseURL == "" {
		if spec.needBase {
			return Provider{}, configErrorf("DSPY_MODEL=%q needs a base URL: set LM_API_BASE%s", model, orVars(spec.baseEnvs))
		}
		p.BaseURL = spec.base
	}
	p.BaseURL = strings.TrimRight(p.BaseURL, "/")
	if _, err := url.ParseRequestURI(p.BaseURL); err != nil {
		return Provider{}, configErrorf("LM_API_BASE=%q is not a URL: %v", p.BaseURL, err)
	}
	if p.APIKey == "" {
		p.APIKey = firstEnv(lookupEnv, spec.keyEnvs)
	}
	if p.APIKey == "" && !spec.keyless && !isLoopback(p.BaseURL) {
		return Provider{}, configErrorf("DSPY_MODEL=%q needs an API key: set %s", model, strings.Join(append(append([]string{}, spec.keyEnvs...), "LM_API_KEY"), " or "))
	}
	switch name {
	case "ollama", "ollama_chat":
		// LiteLLM's OLLAMA_API_BASE is the server root; the OpenAI API is under /v1.
		if !strings.HasSuffix(p.BaseURL, "/v1") {
			p.BaseURL += "/v1"
		}
	case "fireworks_ai":
		if !strings.HasPrefix(p.WireModel, "accounts/") {
			p.WireModel = "accounts/fireworks/models/" + p.WireModel
		}
	case "azure":
		p.AzureAPIVersion = azureAPIVersion
		if p.AzureAPIVersion == "" {
			p.AzureAPIVersion, _ = lookupEnv("AZURE_API_VERSION")
		}
		if p.AzureAPIVersion == "" {
			return Provider{}, configErrorf("DSPY_MODEL=%q needs an API version: set AZURE_API_VERSION", model)
		}
		// Azure addresses the deployment in the path; the body's model is ignored.
		p.BaseURL += "/openai/deployments/" + url.PathEscape(wire)
	}
	return p, nil
}

func firstEnv(lookupEnv func(string) (string, bool), names []string) string {
	for _, n := range names {
		if v, ok := lookupEnv(n); ok && v != "" {
			return v
		}
	}
	return ""
}

func orVars(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " or " + strings.Join(names, " or ")
}

// isLoopback reports a base URL on this machine (a fake or local server),
// where a missing key is no mistake.
func isLoopback(base string) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

var oSeriesRE = regexp.MustCompile(`^o[1345](?:-(?:mini|nano|pro))?(?:-\d{4}-\d{2}-\d{2})?$`)

// IsReasoningModel reports an OpenAI reasoning model as DSPy does (SPEC §8):
// the family after the last "/" matches
// ^(?:o[1345](?:-(?:mini|nano|pro))?(?:-\d{4}-\d{2}-\d{2})?|gpt-5(?!-chat)(?:-.*)?)$.
func IsReasoningModel(model string) bool {
	family := strings.ToLower(model[strings.LastIndex(model, "/")+1:])
	if oSeriesRE.MatchString(family) {
		return true
	}
	// gpt-5(?!-chat)(?:-.*)? without lookahead.
	return family == "gpt-5" || (strings.HasPrefix(family, "gpt-5-") && !strings.HasPrefix(family, "gpt-5-chat"))
}
