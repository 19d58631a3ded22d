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
