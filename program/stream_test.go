package program

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDSPyChatListenerVector(t *testing.T) {
	t.Parallel()
	type chunk struct {
		Chunk       string `json:"chunk"`
		IsLastChunk bool   `json:"is_last_chunk"`
	}
	var vec map[string]struct {
		ListenField    string   `json:"listen_field"`
		Tokens         []string `json:"tokens"`
		PerTokenOutput []*chunk `json:"per_token_output"`
		Finalize       *chunk   `json:"finalize"`
		CacheHit       bool     `json:"cache_hit"`
		StreamStart    bool     `json:"stream_start"`
		StreamEnd      bool     `json:"stream_end"`
	}
	readVector(t, "stream_listener_chat.json", &vec)
	for name, tc := range vec {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := NewDSPyChatListener(tc.ListenField)
			conv := func(r *StreamResponse) *chunk {
				if r == nil {
					return nil
				}
				return &chunk{Chunk: r.Chunk, IsLastChunk: r.IsLastChunk}
			}
			var got []*chunk
			for _, tok := range tc.Tokens {
				got = append(got, conv(l.Receive(tok)))
			}
			if diff := cmp.Diff(tc.PerTokenOutput, got); diff != "" {
				t.Errorf("per-token output (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.Finalize, conv(l.Finalize())); diff != "" {
				t.Errorf("finalize (-want +got):\n%s", diff)
			}
			if l.CacheHit() != tc.CacheHit || l.Started() != tc.StreamStart || l.Ended() != tc.StreamEnd {
				t.Errorf("flags = %v %v %v, want %v %v %v", l.CacheHit(), l.Started(), l.Ended(), tc.CacheHit, tc.StreamStart, tc.StreamEnd)
			}
		})
	}
}

// streamChat runs the exact chat listener over tokens and returns the chunks.
func streamChat(field string, tokens []string) []string {
	var chunks []string
	s := newChatFieldStream(field, func(c string) { chunks = append(chunks, c) })
	for _, tok := range tokens {
		s.write(tok)
	}
	s.close()
	return chunks
}

func TestChatFieldStreamMatchesParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tokens []string
		want   []string // expected chunks; their concatenation is the parsed value
	}{
		{"split marker", []string{"[[ ## reasoning ## ]]\n", "R", "\n\n", "[[", " ##", " answer", " ## ]]", "\n", "Hello", " world", ".", "\n\n", "[[ ##", " extra", " ## ]]", "\nX"},
			[]string{"Hello", " world", "."}},
		{"double bracket kept", []string{"[[ ## answer ## ]]\n", "a [", "[ link", "]] b", " c"},
			[]string{"a [", "[ link", "]] b", " c"}},
		{"bracket line that is not a header", []string{"[[ ## answer ## ]]\nx\n", "[[ ## not a header", "\nend"},
			[]string{"x", "\n[[ ## not a header", "\nend"}},
		{"trailing newlines held", []string{"[[ ## answer ## ]]\nA  ", "\n\n", "B\n\n", "[[ ## completed ## ]]"},
			[]string{"A", "  \n\nB"}},
		{"text on header line", []string{"[[ ## answer ## ]] first  \nsecond"},
			[]string{"first\nsecond"}},
		{"leading whitespace quirk", []string{"  [[ ## answer ## ]]   A\nB"},
			[]string{"]]   A\nB"}},
		{"crlf split", []string{"[[ ## answer ## ]]\r", "\nA\r", "\nB\r"},
			[]string{"A", "\nB"}},
		{"first occurrence wins", []string{"[[ ## answer ## ]]\nA1\n[[ ## answer ## ]]\nA2"},
			[]string{"A1"}},
		{"whole answer in one chunk", []string{"[[ ## answer ## ]]\nFull text\n\n[[ ## completed ## ]]"},
			[]string{"Full text"}},
		{"split multibyte rune", []string{"[[ ## answer ## ]]\nr\xc3", "\xa9sum\xc3\xa9"},
			[]string{"r", "ésumé"}},
	}
	sig, err := ParseSignature("question -> answer", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := streamChat("answer", tc.tokens)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("chunks (-want +got):\n%s", diff)
			}
			out, err := ChatAdapter{}.Parse(sig, strings.Join(tc.tokens, ""))
			if err != nil {
				t.Fatal(err)
			}
			v, _ := out.Get("answer")
			if joined := strings.Join(got, ""); joined != v {
				t.Errorf("chunks join to %q, parsed value is %q", joined, v)
			}
		})
	}
}

func TestJSONFieldStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tokens []string
		want   string
	}{
		{"plain", []string{`{"reasoning": "r", "ans`, `wer": "Hel`, `lo\n`, `wor\"ld\u00`, `e9 \ud83d`, `\ude00"}`}, "Hello\nwor\"ldé 😀"},
		{"fenced", []string{"```json\n{\n  \"answer\": \"", "x\\\\y\"\n}\n```"}, `x\y`},
		{"nested before", []string{`{"a": {"answer": "no"}, "answer": "yes"}`}, "yes"},
	}
	sig, err := ParseSignature("question -> answer", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			s := newJSONFieldStream("answer", func(c string) { b.WriteString(c) })
			for _, tok := range tc.tokens {
				s.write(tok)
			}
			s.close()
			if b.String() != tc.want {
				t.Errorf("streamed %q, want %q", b.String(), tc.want)
			}
			out, err := JSONAdapter{}.Parse(sig, strings.Join(tc.tokens, ""))
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := out.Get("answer"); v != tc.want {
				t.Errorf("parsed %q, want %q", v, tc.want)
			}
		})
	}
}
