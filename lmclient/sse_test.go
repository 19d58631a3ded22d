package lmclient

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readAllEvents(s string) ([]string, error) {
	r := newSSEReader(strings.NewReader(s))
	var out []string
	for {
		d, err := r.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(d))
	}
}

func TestSSEReader(t *testing.T) {
	t.Parallel()
	in := ": comment\n\ndata: {\"a\":1}\n\nevent: x\ndata: line1\ndata: line2\r\n\r\ndata:nospace\n\n\n\ndata: [DONE]"
	got, err := readAllEvents(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"a":1}`, "line1\nline2", "nospace", "[DONE]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	long := strings.Repeat("x", 100<<10)
	got, _ = readAllEvents("data: " + long + "\n\n")
	if len(got) != 1 || got[0] != long {
		t.Errorf("a 100 KiB event was not read whole")
	}
}

func TestParseChunk(t *testing.T) {
	t.Parallel()
	c := parseChunk([]byte(`{"choices":[{"index":0,"delta":{"content":"h\u00e9\n"},"finish_reason":null}],"usage":null}`))
	if c.content != "hé\n" || c.hasFinish || c.usage != "null" {
		t.Errorf("%+v", c)
	}
	c = parseChunk([]byte(`{"choices":[],"usage":{"total_tokens":3}}`))
	if c.usage != `{"total_tokens":3}` {
		t.Errorf("%+v", c)
	}
	c = parseChunk([]byte(`{"error":{"message":"overloaded","type":"server_error"}}`))
	b := &Client{}
	var ae *APIError
	if err := b.streamError(c.errorRaw); !errors.As(err, &ae) || !ae.Retryable() || !strings.Contains(ae.Message, "overloaded") {
		t.Errorf("error event → %v", err)
	}
}

func FuzzSSEReader(f *testing.F) {
	f.Add("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\n")
	f.Add(": c\r\ndata: a\ndata: b\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		events, _ := readAllEvents(s)
		for _, e := range events {
			_ = parseChunk([]byte(e))
		}
	})
}

// chunks are chat.completion.chunk payloads as providers send them, and
// odd ones.
var chunks = []string{
	`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"h\u00e9\n\"x\""},"logprobs":null,"finish_reason":null}],"usage":null}`,
	`{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
	`{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":0}}}`,
	`{"error":{"message":"overloaded","type":"server_error"}}`,
	`{"choices":[{"delta":{"content":null},"finish_reason":"length"},{"delta":{"content":"second"}}]}`,
	`{"choices":[{"delta":{"content":12},"finish_reason":7}],"usage":"x","error":null}`,
	`{"usage":{"a":1},"usage":{"b":2},"choices":[{"delta":{"content":"a"}}],"choices":[{"delta":{"content":"b"}}]}`,
	`{"us\u0061ge":{"a":1},"choices":{"0":{"delta":{"content":"obj"}}}}`,
	`{"choices":[{"delta":{"content":"cut`, `[1,2]`, `"s"`, ``, `{}`, `{"choices":[{"delta":{"content":"a\ud83d\ude00b"}}]}`,
}

// TestParseChunkAsPaths: the one pass reads every chunk as the four gjson
// path lookups did.
func TestParseChunkAsPaths(t *testing.T) {
	t.Parallel()
	for _, c := range chunks {
		if got, want := parseChunk([]byte(c)), parseChunkPaths([]byte(c)); got != want {
			t.Errorf("parseChunk(%s) = %+v, paths read %+v", c, got, want)
		}
	}
}

func FuzzParseChunk(f *testing.F) {
	for _, c := range chunks {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, c string) {
		if got, want := parseChunk([]byte(c)), parseChunkPaths([]byte(c)); got != want {
			t.Errorf("parseChunk(%q) = %+v, paths read %+v", c, got, want)
		}
	})
}

// TestParseChunkAllocs: a content chunk costs one copy of its bytes and
// its unescaped content (6 allocations before, as four path lookups).
func TestParseChunkAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	data := []byte(chunks[0])
	allocs := testing.AllocsPerRun(100, func() {
		if parseChunk(data).content == "" {
			t.Fatal("no content")
		}
	})
	if allocs > 2 {
		t.Errorf("parseChunk: %.0f allocations, want at most 2", allocs)
	}
}
