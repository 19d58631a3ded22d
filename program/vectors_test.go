package program

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readVector decodes testdata/vectors/name into v with encoding/json.
func readVector(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
}

// readOrderedVector decodes testdata/vectors/name keeping key order.
func readOrderedVector(t *testing.T, name string) *Map {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeJSON(data)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return v.(*Map)
}

func TestInferPrefixVector(t *testing.T) {
	t.Parallel()
	var cases map[string]string
	readVector(t, "infer_prefix.json", &cases)
	// The spec's table adds a few names the vector file lacks.
	cases["gpt4o_mini"] = "Gpt 4 O Mini:"
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := inferPrefix(name); got != want {
				t.Errorf("inferPrefix(%q) = %q, want %q", name, got, want)
			}
		})
	}
}

type messagesVector struct {
	Inputs   map[string]any `json:"inputs"`
	Messages []Message      `json:"messages"`
}

func TestWorkedExampleVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file    string
		adapter Adapter
	}{
		{"worked_example_chat.json", ChatAdapter{}},
		{"worked_example_json_fallback.json", JSONAdapter{}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			var vec messagesVector
			readVector(t, tc.file, &vec)
			ordered := readOrderedVector(t, tc.file)
			dv, _ := ordered.Get("demos")
			var demos []*Map
			for _, d := range dv.([]any) {
				demos = append(demos, d.(*Map))
			}
			pred := NewQA().Predictor().Predict.WithDemos(demos)
			got := tc.adapter.Format(pred.Signature(), pred.Demos(), vec.Inputs)
			if diff := cmp.Diff(vec.Messages, got); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChatParseVector(t *testing.T) {
	t.Parallel()
	var vec struct {
		Signature string `json:"signature"`
		Cases     map[string]struct {
			Completion string         `json:"completion"`
			Result     map[string]any `json:"result"`
			Error      string         `json:"error"`
		} `json:"cases"`
	}
	readVector(t, "chat_parse_cases.json", &vec)
	sig, err := ParseSignature(vec.Signature, "")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range vec.Cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := ChatAdapter{}.Parse(sig, tc.Completion)
			if tc.Error != "" {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("Parse error = %v, want *ParseError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Compare through JSON so int64 and float64 from the vector agree.
			gotJSON, _ := json.Marshal(got)
			var gotAny map[string]any
			if err := json.Unmarshal(gotJSON, &gotAny); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.Result, gotAny); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCacheKeyVectorEncoding(t *testing.T) {
	t.Parallel()
	// The cache key is lmclient's, but its canonical bytes are this
	// package's compact encoder with sorted keys: check that they agree.
	req := readOrderedVector(t, "cache_key.json")
	rd, _ := req.Get("request_dict")
	want, _ := req.Get("canonical_bytes")
	wantSum, _ := req.Get("sha256")
	got, err := marshalCompact(sortKeysDeep(rd))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("canonical bytes\n got %s\nwant %s", got, want)
	}
	if s := sha256Hex(got); s != wantSum {
		t.Errorf("sha256 = %s, want %s", s, wantSum)
	}
}

func sortKeysDeep(v any) any {
	switch t := v.(type) {
	case *Map:
		keys := t.Keys()
		sortStrings(keys)
		out := NewMap()
		for _, k := range keys {
			out.Set(k, sortKeysDeep(t.values[k]))
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = sortKeysDeep(e)
		}
		return out
	}
	return v
}
