package program

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// scriptedLM answers each call with the next scripted reply.
type scriptedLM struct {
	mu       sync.Mutex
	replies  []reply
	requests []*Request
	accepted []*Request
}

type reply struct {
	text     string
	usage    Usage
	cacheHit bool
	err      error
	chunks   []string // streamed deltas; default: the text in one delta
}

func (l *scriptedLM) Model() string { return "openai/gpt-4o-mini" }

func (l *scriptedLM) Complete(_ context.Context, req *Request) (*Completion, error) {
	l.mu.Lock()
	l.requests = append(l.requests, req)
	if len(l.replies) == 0 {
		l.mu.Unlock()
		return nil, errors.New("scripted LM: no more replies")
	}
	r := l.replies[0]
	l.replies = l.replies[1:]
	l.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	if r.chunks != nil {
		r.text = strings.Join(r.chunks, "")
	}
	if req.OnDelta != nil {
		chunks := r.chunks
		if chunks == nil {
			chunks = []string{r.text}
		}
		for _, c := range chunks {
			req.OnDelta(c)
		}
	}
	return &Completion{Text: r.text, FinishReason: "stop", Usage: r.usage, CacheHit: r.cacheHit}, nil
}

func (l *scriptedLM) Accept(_ context.Context, req *Request, _ *Completion) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accepted = append(l.accepted, req)
	return nil
}

type apiError struct{ status int }

func (e *apiError) Error() string { return "api error" }

const goodChat = "[[ ## reasoning ## ]]\nBecause.\n\n[[ ## answer ## ]]\nRayleigh scattering.\n\n[[ ## key_concepts ## ]]\nscattering\n\n[[ ## question_type ## ]]\nfactual\n\n[[ ## completed ## ]]"

const goodJSON = `{"reasoning": "Because.", "answer": "Rayleigh scattering.", "key_concepts": "scattering", "question_type": "factual"}`

func usage(p, c int64) Usage {
	return Usage{"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
		"prompt_tokens_details": map[string]any{"cached_tokens": int64(0), "audio_tokens": nil}}
}

func TestRunFallbackAndUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		replies      []reply
		wantCalls    int
		wantFormat   string
		wantUsage    map[string]Usage
		wantCacheHit bool
		wantParseErr bool
		wantAccepted int
	}{
		{
			name:       "chat parses",
			replies:    []reply{{text: goodChat, usage: usage(10, 5)}},
			wantCalls:  1,
			wantFormat: FormatChat,
			wantUsage: map[string]Usage{"openai/gpt-4o-mini": {"prompt_tokens": int64(10), "completion_tokens": int64(5), "total_tokens": int64(15),
				"prompt_tokens_details": Usage{"cached_tokens": int64(0), "audio_tokens": nil}}},
			wantAccepted: 1,
		},
		{
			name:       "chat fails, structured output parses",
			replies:    []reply{{text: "no headers here", usage: usage(10, 5)}, {text: goodJSON, usage: usage(20, 7)}},
			wantCalls:  2,
			wantFormat: FormatJSONSchema,
			wantUsage: map[string]Usage{"openai/gpt-4o-mini": {"prompt_tokens": int64(30), "completion_tokens": int64(12), "total_tokens": int64(42),
				"prompt_tokens_details": Usage{"cached_tokens": int64(0), "audio_tokens": nil}}},
			wantAccepted: 1,
		},
		{
			name:         "every attempt fails",
			replies:      []reply{{text: "x"}, {text: "y"}, {text: `{"answer": "only"}`}},
			wantCalls:    3,
			wantParseErr: true,
		},
		{
			name:         "fully cached",
			replies:      []reply{{text: goodChat, cacheHit: true}},
			wantCalls:    1,
			wantFormat:   FormatChat,
			wantUsage:    map[string]Usage{},
			wantCacheHit: true,
			wantAccepted: 1,
		},
		{
			name:         "cached chat garbage, fresh JSON",
			replies:      []reply{{text: "garbage", cacheHit: true}, {text: goodJSON, usage: usage(1, 1)}},
			wantCalls:    2,
			wantFormat:   FormatJSONSchema,
			wantUsage:    map[string]Usage{"openai/gpt-4o-mini": usageAsMerged(usage(1, 1))},
			wantAccepted: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lm := &scriptedLM{replies: tc.replies}
			res, err := NewQA().Run(context.Background(), lm, map[string]any{"question": "Why is the sky blue?"}, nil)
			if len(lm.requests) != tc.wantCalls {
				t.Errorf("LM calls = %d, want %d", len(lm.requests), tc.wantCalls)
			}
			if len(lm.accepted) != tc.wantAccepted {
				t.Errorf("accepted = %d, want %d", len(lm.accepted), tc.wantAccepted)
			}
			for i, req := range lm.requests {
				if want := i > 0; req.SkipCacheRead != want {
					t.Errorf("request %d SkipCacheRead = %v, want %v", i, req.SkipCacheRead, want)
				}
			}
			if tc.wantParseErr {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v, want *ParseError", err)
				}
				if pe.Adapter != "JSONAdapter" || !strings.Contains(err.Error(), "Actual output fields parsed from the LM response: [answer]") {
					t.Errorf("unexpected parse error: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Calls != tc.wantCalls || res.Format != tc.wantFormat || res.CacheHit != tc.wantCacheHit {
				t.Errorf("result calls=%d format=%s cache=%v", res.Calls, res.Format, res.CacheHit)
			}
			if diff := cmp.Diff(tc.wantUsage, res.Usage); diff != "" {
				t.Errorf("usage (-want +got):\n%s", diff)
			}
			if v, _ := res.Outputs.Get("answer"); v != "Rayleigh scattering." {
				t.Errorf("answer = %q", v)
			}
			if diff := cmp.Diff([]string{"reasoning", "answer", "key_concepts", "question_type"}, res.Outputs.Keys()); diff != "" {
				t.Errorf("output order (-want +got):\n%s", diff)
			}
		})
	}
}

func usageAsMerged(u Usage) Usage { return mergeUsage(nil, u) }

func TestRunRequests(t *testing.T) {
	t.Parallel()
	lm := &scriptedLM{replies: []reply{{text: "bad"}, {text: "bad"}, {text: goodJSON}}}
	_, err := NewQA().Run(context.Background(), lm, map[string]any{"question": "q"}, &RunOptions{NoCache: true, Priority: PriorityBatch})
	if err != nil {
		t.Fatal(err)
	}
	var formats []string
	for _, r := range lm.requests {
		if !r.NoCache || r.Priority != PriorityBatch {
			t.Errorf("request options not passed: %+v", r)
		}
		f := "chat"
		if r.ResponseFormat != nil {
			f = r.ResponseFormat.Type
		}
		formats = append(formats, f)
	}
	if diff := cmp.Diff([]string{"chat", "json_schema", "json_object"}, formats); diff != "" {
		t.Errorf("formats (-want +got):\n%s", diff)
	}
	wantSchema := `{"additionalProperties":false,"properties":{"reasoning":{"title":"Reasoning","type":"string"},"answer":{"title":"Answer","type":"string"},"key_concepts":{"title":"Key Concepts","type":"string"},"question_type":{"title":"Question Type","type":"string"}},"required":["reasoning","answer","key_concepts","question_type"],"title":"DSPyProgramOutputs","type":"object"}`
	rf := lm.requests[1].ResponseFormat
	if string(rf.Schema) != wantSchema || rf.Name != "DSPyProgramOutputs" || !rf.Strict {
		t.Errorf("json_schema format = %+v (%s)", rf, rf.Schema)
	}
}

func TestRunLMErrorNeverFallsBack(t *testing.T) {
	t.Parallel()
	lm := &scriptedLM{replies: []reply{{err: &apiError{status: 429}}}}
	_, err := NewQA().Run(context.Background(), lm, map[string]any{"question": "q"}, nil)
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != 429 {
		t.Fatalf("err = %v, want the LM's *apiError", err)
	}
	var pe *ParseError
	if errors.As(err, &pe) {
		t.Error("an LM error must not look like a parse error")
	}
	if len(lm.requests) != 1 {
		t.Errorf("LM calls = %d, want 1", len(lm.requests))
	}
}

func TestRunStreaming(t *testing.T) {
	t.Parallel()
	type event struct{ Kind, Field, Text string }
	tests := []struct {
		name    string
		replies []reply
		want    []event
	}{
		{
			name: "chat",
			replies: []reply{{chunks: []string{
				"[[ ## reasoning ## ]]\nBec", "ause.\n\n[[ ## ans", "wer ## ]]\nRay", "leigh [[x]] ", "scattering.\n", "\n[[ ## key_concepts ## ]]\nscattering\n\n[[ ## question_type ## ]]\nfactual\n\n[[ ## completed ## ]]"}}},
			want: []event{{"chunk", "answer", "Ray"}, {"chunk", "answer", "leigh [[x]]"}, {"chunk", "answer", " scattering."}},
		},
		{
			name: "chat fails after streaming, JSON streams",
			replies: []reply{
				{chunks: []string{"[[ ## answer ## ]]\n", "partial"}},
				{chunks: []string{goodJSON[:50], goodJSON[50:]}},
			},
			want: []event{{"chunk", "answer", "partial"}, {"reset", "", ""}, {"chunk", "answer", "Rayleigh scat"}, {"chunk", "answer", "tering."}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []event
			opts := &RunOptions{
				StreamFields: []string{"answer"},
				OnChunk:      func(f, c string) { got = append(got, event{"chunk", f, c}) },
				OnReset:      func(string) { got = append(got, event{Kind: "reset"}) },
			}
			lm := &scriptedLM{replies: tc.replies}
			res, err := NewQA().Run(context.Background(), lm, map[string]any{"question": "q"}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			var last strings.Builder
			for _, e := range got {
				if e.Kind == "reset" {
					last.Reset()
				} else {
					last.WriteString(e.Text)
				}
			}
			if v, _ := res.Outputs.Get("answer"); last.String() != v {
				t.Errorf("chunks since last reset = %q, parsed %q", last.String(), v)
			}
		})
	}
}

func TestRunRejectsNonStrStreamField(t *testing.T) {
	t.Parallel()
	_, err := NewQA().Run(context.Background(), &scriptedLM{}, nil, &RunOptions{StreamFields: []string{"nope"}, OnChunk: func(string, string) {}})
	if !errors.Is(err, ErrNotStreamable) {
		t.Fatalf("err = %v, want ErrNotStreamable", err)
	}
}

func TestResultJSON(t *testing.T) {
	t.Parallel()
	lm := &scriptedLM{replies: []reply{{text: goodChat, usage: usage(1, 2)}}}
	res, err := NewQA().Run(context.Background(), lm, map[string]any{"question": "q"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"outputs":{"reasoning":"Because.","answer":"Rayleigh scattering."`) {
		t.Errorf("JSON = %s", b)
	}
}

// TestRunFromAttempt: a run told to start at a later attempt (the offload
// runner's, after a provider answer failed to parse) sends that attempt's
// request first, as one that follows a parse failure, then falls back from
// there as a whole run would.
func TestRunFromAttempt(t *testing.T) {
	t.Parallel()
	in := map[string]any{"question": "Why is the sky blue?"}
	whole := &scriptedLM{replies: []reply{{text: "bad"}, {text: "bad"}, {text: goodJSON}}}
	if _, err := NewQA().Run(context.Background(), whole, in, nil); err != nil {
		t.Fatal(err)
	}
	for from := 1; from <= 2; from++ {
		lm := &scriptedLM{replies: []reply{{text: "bad"}, {text: goodJSON}}}
		res, err := NewQA().Run(context.Background(), lm, in, &RunOptions{FromAttempt: from})
		if from == 2 {
			var pe *ParseError
			if !errors.As(err, &pe) || len(lm.requests) != 1 {
				t.Fatalf("from %d: err = %v after %d calls, want a parse error after 1 (the last attempt)", from, err, len(lm.requests))
			}
			continue
		}
		if err != nil {
			t.Fatalf("from %d: %v", from, err)
		}
		if res.Format != FormatJSONObject || res.Calls != 2 {
			t.Errorf("from %d: format %s in %d calls, want json_object in 2", from, res.Format, res.Calls)
		}
		for i, req := range lm.requests {
			if !req.SkipCacheRead {
				t.Errorf("from %d: request %d reads the cache; it follows a parse failure", from, i)
			}
			if diff := cmp.Diff(whole.requests[from+i].Messages, req.Messages); diff != "" || string(req.ResponseFormat.Wire()) != string(whole.requests[from+i].ResponseFormat.Wire()) {
				t.Errorf("from %d: request %d differs from the whole run's attempt %d (-want +got):\n%s", from, i, from+i, diff)
			}
		}
	}
	lm := &scriptedLM{}
	if _, err := NewQA().Run(context.Background(), lm, in, &RunOptions{FromAttempt: 3}); !errors.Is(err, ErrNoAttempt) || len(lm.requests) != 0 {
		t.Errorf("from 3: err = %v after %d calls, want ErrNoAttempt before any call", err, len(lm.requests))
	}
}
