package config

import (
	"net"
	"strconv"
	"strings"
)

// DefaultRedisURL is the Redis `qa api` and `qa worker` use when REDIS_URL
// is empty (`qa dev` embeds one instead).
const DefaultRedisURL = "redis://localhost:6379/0"

// LMAttemptsPerRun is the most LM calls one run of the program makes: the
// chat adapter, then DSPy's JSON fallbacks with a json_schema and then a
// json_object response format. Each may take LM_TIMEOUT, which is why
// JOB_TIMEOUT must exceed this many of them (see [Config.Validate]).
const LMAttemptsPerRun = 3

// List is a comma-separated list; spaces around items and empty items are
// dropped, so "a, b," is [a b].
type List []string

// UnmarshalText splits text on commas.
func (l *List) UnmarshalText(text []byte) error {
	var items List
	for item := range strings.SplitSeq(string(text), ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	*l = items
	return nil
}

// String joins the list with commas, as it is written in the environment.
func (l List) String() string { return strings.Join(l, ",") }

// HTTPAddr is the API's listen address, HOST:PORT.
func (c *Config) HTTPAddr() string {
	return net.JoinHostPort(c.HTTP.Host, strconv.Itoa(c.HTTP.Port))
}

// WorkerMetricsAddr is a worker's health and metrics listen address,
// HOST:WORKER_METRICS_PORT.
func (c *Config) WorkerMetricsAddr() string {
	return net.JoinHostPort(c.HTTP.Host, strconv.Itoa(c.Queue.WorkerMetricsPort))
}

// Embedded reports whether no Redis is configured (no REDIS_URL and no
// Sentinel): `qa dev` then embeds one, and the other commands use
// [DefaultRedisURL].
func (r Redis) Embedded() bool { return r.URL == "" && len(r.SentinelAddrs) == 0 }

// EffectiveURL is REDIS_URL, or [DefaultRedisURL] when it is empty. Call
// [SecretURL.Reveal] on it to connect.
func (r Redis) EffectiveURL() SecretURL {
	if r.URL == "" {
		return DefaultRedisURL
	}
	return r.URL
}

// UsesSentinel reports whether the master is found through Sentinel.
func (r Redis) UsesSentinel() bool { return len(r.SentinelAddrs) > 0 }

// Provider is the provider part of DSPY_MODEL ("openai" for
// "openai/gpt-4o-mini"); a model without one is taken as OpenAI's, as
// LiteLLM does.
func (l LM) Provider() string { return providerOf(l.Model) }

func providerOf(model string) string {
	if p, _, ok := strings.Cut(model, "/"); ok && p != "" {
		return strings.ToLower(p)
	}
	return "openai"
}

// providerVar is the provider's own variable for suffix ("API_KEY",
// "API_BASE"), as LiteLLM names them: OPENAI_API_KEY, AZURE_API_BASE.
func providerVar(model, suffix string) string {
	p := strings.ToUpper(providerOf(model))
	p = strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, p)
	return p + "_" + suffix
}
