package lmclient

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/qaqueue/qaqueue/program"
)

// TestCacheKeyVector checks DSPy's published vector byte for byte, both
// from the vector's own dict and from the request a Client builds.
func TestCacheKeyVector(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/cache_key.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		RequestDict    map[string]any `json:"request_dict"`
		CanonicalBytes string         `json:"canonical_bytes"`
		SHA256         string         `json:"sha256"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	got, err := CanonicalJSON(v.RequestDict)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v.CanonicalBytes, string(got)); diff != "" {
		t.Errorf("canonical bytes (-want +got):\n%s", diff)
	}

	c := newClient(t, Config{Model: "openai/gpt-4o-mini", APIKey: "k", MemoryEnabled: true}, Deps{})
	req := &program.Request{Messages: []program.Message{{Role: "user", Content: "hi"}}}
	r, err := c.cacheRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := CanonicalJSON(r)
	if diff := cmp.Diff(v.CanonicalBytes, string(b)); diff != "" {
		t.Errorf("client request bytes (-want +got):\n%s", diff)
	}
	key, err := c.CacheKey(req)
	if err != nil || key != v.SHA256 {
		t.Errorf("CacheKey = %s, %v; want %s", key, err, v.SHA256)
	}
}

func TestCanonicalJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   any
		want string
	}{
		{map[string]any{"b": 1, "a": []any{true, nil, "x"}}, `{"a":[true,null,"x"],"b":1}`},
		{"<&> \u2028 é \"q\" \\ \n\t\x01\x7f", "\"<&> \u2028 é \\\"q\\\" \\\\ \\n\\t\\u0001\x7f\""},
		{0.7, `0.7`},
		{1.0, `1.0`},
		{0.0, `0.0`},
		// orjson's float forms (checked with orjson 3.8.3; json.dumps would
		// write 2.5e-05 and 1e+16).
		{2.5e-5, `0.000025`},
		{1e-7, `1e-7`},
		{1e16, `1e16`},
		{map[string]any{"t": []any{map[string]any{"z": 0.5, "y": nil}}}, `{"t":[{"y":null,"z":0.5}]}`},
		{json.Number("12"), `12`},
	}
	for _, tt := range tests {
		got, err := CanonicalJSON(tt.in)
		if err != nil || string(got) != tt.want {
			t.Errorf("CanonicalJSON(%#v) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := CanonicalJSON("\xff"); err == nil {
		t.Error("invalid UTF-8 must be refused")
	}
}

func TestCacheRequestFields(t *testing.T) {
	t.Parallel()
	temp, n := 0.7, 1000
	c := newClient(t, Config{Model: "openai/gpt-4o-mini", APIKey: "k", Temperature: &temp, MaxTokens: &n}, Deps{})
	schema := `{"type": "object", "title": "DSPyProgramOutputs", "properties": {"answer": {"type": "string"}}}`
	req := &program.Request{
		Messages:       []program.Message{{Role: "user", Content: "hi"}},
		ResponseFormat: &program.ResponseFormat{Type: "json_schema", Name: "DSPyProgramOutputs", Schema: json.RawMessage(schema), Strict: true},
	}
	r, _ := c.cacheRequest(req)
	b, _ := CanonicalJSON(r)
	want := `{"_fn_identifier":"dspy.clients.lm.litellm_completion","max_tokens":1000,"messages":[{"content":"hi","role":"user"}],"model":"openai/gpt-4o-mini","response_format":{"properties":{"answer":{"type":"string"}},"title":"DSPyProgramOutputs","type":"object"},"temperature":0.7}`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	req.ResponseFormat = &program.ResponseFormat{Type: "json_object"}
	r, _ = c.cacheRequest(req)
	if diff := cmp.Diff(map[string]any{"type": "json_object"}, r["response_format"]); diff != "" {
		t.Errorf("json_object form (-want +got):\n%s", diff)
	}
	rc := newClient(t, Config{Model: "openai/o3", APIKey: "k"}, Deps{})
	r, _ = rc.cacheRequest(&program.Request{Messages: req.Messages})
	if _, ok := r["max_completion_tokens"]; !ok {
		t.Errorf("reasoning model keys max_completion_tokens: %v", r)
	}
}

// Two requests that differ only in their response_format never share a
// cache entry (a stage's JSON attempts, two programs with the same prompt
// and different output types), and a json_schema is keyed in DSPy's form:
// the schema before LiteLLM's strict rewrite.
func TestCacheKeyCoversResponseFormat(t *testing.T) {
	t.Parallel()
	c := newClient(t, Config{Model: "openai/gpt-4o-mini", APIKey: "k"}, Deps{})
	msgs := []program.Message{{Role: "user", Content: "same prompt"}}
	formats := []*program.ResponseFormat{
		nil,
		{Type: "json_object"},
		{Type: "json_schema", Name: "DSPyProgramOutputs", Strict: true, Schema: json.RawMessage(`{"properties":{"a":{"type":"integer"}},"type":"object"}`)},
		{Type: "json_schema", Name: "DSPyProgramOutputs", Strict: true, Schema: json.RawMessage(`{"properties":{"a":{"type":"string"}},"type":"object"}`)},
	}
	seen := map[string]int{}
	for i, rf := range formats {
		key, err := c.CacheKey(&program.Request{Messages: msgs, ResponseFormat: rf})
		if err != nil {
			t.Fatal(err)
		}
		if j, dup := seen[key]; dup {
			t.Errorf("response formats %d and %d share the cache key %s", j, i, key)
		}
		seen[key] = i
	}
	strict := &program.ResponseFormat{Type: "json_schema", Name: "DSPyProgramOutputs", Strict: true,
		Schema:    json.RawMessage(`{"properties":{"a":{"type":"integer","title":"A"}},"type":"object"}`),
		KeySchema: json.RawMessage(`{"properties":{"a":{"default":null,"type":"integer","title":"A"}},"type":"object"}`)}
	r, err := c.cacheRequest(&program.Request{Messages: msgs, ResponseFormat: strict})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := CanonicalJSON(r["response_format"])
	if want := `{"properties":{"a":{"default":null,"title":"A","type":"integer"}},"type":"object"}`; string(b) != want {
		t.Errorf("keyed response_format %s, want DSPy's schema %s", b, want)
	}
}

// CacheKey writes the request dict's canonical JSON directly, in its keys'
// sorted order: it must hash the very bytes CanonicalJSON writes of the dict
// (cacheRequest), whatever the settings, messages and response format.
func TestCacheKeyMatchesDict(t *testing.T) {
	t.Parallel()
	temp, tokens, reasoningTokens := 0.7, 512, 16000
	schema := json.RawMessage(`{"type":"object","properties":{"b":{"type":"number"},"a":{"type":"integer","title":"A"}},"required":["a","b"]}`)
	formats := []*program.ResponseFormat{
		nil,
		{Type: "json_object"},
		{Type: "json_schema", Name: "DSPyProgramOutputs", Strict: true, Schema: schema},
		{Type: "json_schema", Name: "DSPyProgramOutputs", Strict: true, Schema: schema,
			KeySchema: json.RawMessage(`{"properties":{"a":{"default":null,"type":"integer","title":"A"},"n":{"default":1.50}},"type":"object"}`)},
	}
	messages := [][]program.Message{
		{{Role: "user", Content: "hi"}},
		{{Role: "system", Content: "<&> \u2028 é \"q\" \\ \n\t\x01\x7f"}, {Role: "user", Content: "two"}, {Role: "assistant", Content: ""}},
		{},
	}
	configs := []Config{
		{Model: "openai/gpt-4o-mini", APIKey: "k", MemoryEnabled: true},
		{Model: "openai/gpt-4o-mini", APIKey: "k", MemoryEnabled: true, Temperature: &temp, MaxTokens: &tokens},
		{Model: "openai/o3-mini", APIKey: "k", MemoryEnabled: true, MaxTokens: &reasoningTokens},
	}
	for ci, cfg := range configs {
		c := newClient(t, cfg, Deps{})
		for _, msgs := range messages {
			for fi, rf := range formats {
				req := &program.Request{Messages: msgs, ResponseFormat: rf}
				r, err := c.cacheRequest(req)
				if err != nil {
					t.Fatal(err)
				}
				want, err := KeyOf(r)
				if err != nil {
					t.Fatal(err)
				}
				for range 2 { // the second finds the format's bytes kept
					if got, err := c.CacheKey(req); err != nil || got != want {
						t.Errorf("config %d, %d messages, format %d: CacheKey = %s, %v; want %s", ci, len(msgs), fi, got, err, want)
					}
				}
			}
		}
	}
	// Text that is not UTF-8 has no key, as orjson refuses it.
	c := newClient(t, configs[0], Deps{})
	if key, err := c.CacheKey(&program.Request{Messages: []program.Message{{Role: "user", Content: "\xff"}}}); err == nil {
		t.Errorf("CacheKey of invalid UTF-8 = %s, want an error", key)
	}
}

// TestCacheKeyAllocs bounds the key of a structured-outputs request: the
// canonical JSON is written in one buffer, the schema's canonical form kept
// from the first call (152 allocations before, through the dict and its
// sorted encoding).
func TestCacheKeyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	c := newClient(t, Config{Model: "openai/gpt-4o-mini", APIKey: "k", MemoryEnabled: true}, Deps{})
	req := chatRequest("How many allocations does a cache key take?")
	req.ResponseFormat = &program.ResponseFormat{Type: "json_schema", Name: "DSPyProgramOutputs", Strict: true,
		Schema: json.RawMessage(`{"properties":{"answer":{"type":"string","title":"Answer"}},"required":["answer"],"type":"object"}`)}
	var err error
	allocs := testing.AllocsPerRun(100, func() {
		if _, e := c.CacheKey(req); e != nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.0f allocations per CacheKey", allocs)
	if allocs > 3 {
		t.Errorf("%.0f allocations per CacheKey, want at most 3", allocs)
	}
}
