package fakelm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func setup(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

const chatUser = "[[ ## question ## ]]\nWhy is the sky blue?\n\nRespond with the corresponding output fields, starting with the field `[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]`, then `[[ ## question_type ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."

func post(t *testing.T, s *Server, body map[string]any) *http.Response {
	t.Helper()
	b, _ := json.Marshal(body)
	res, err := http.Post(s.URL()+"/chat/completions", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Body.Close() })
	return res
}

func msgs(user string) []map[string]string {
	return []map[string]string{{"role": "system", "content": "sys"}, {"role": "user", "content": user}}
}

func TestParsePrompt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want prompt
	}{
		{chatUser, prompt{fields: []string{"reasoning", "answer", "question_type"}, question: "Why is the sky blue?"}},
		{"[[ ## question ## ]]\nWhat is Go?\n\nRespond with a JSON object in the following order of fields: `answer`, then `n` (must be formatted as a valid Python int).",
			prompt{fields: []string{"answer", "n"}, jsonFields: true, question: "What is Go?"}},
		{"[[ ## context ## ]]\nabc\n\n[[ ## question ## ]]\nq?\n\nRespond with the corresponding output fields, starting with the field `[[ ## answer ## ]]` (must be formatted as a valid Python str), and then ending with the marker for `[[ ## completed ## ]]`.",
			prompt{fields: []string{"answer"}, question: "q?"}},
		{"just chatting", prompt{question: "just chatting"}},
	}
	for _, tt := range tests {
		got := parsePrompt(tt.in)
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(prompt{})); diff != "" {
			t.Errorf("parsePrompt(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseDirective(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    directive
		ok, bad bool
	}{
		{"no directive", directive{}, false, false},
		{"q [[fakelm:429]]", directive{fault: Fault{Kind: FaultStatus, Status: 429}}, true, false},
		{"q [[fakelm:429,retry_after=2s,times=1]]", directive{fault: Fault{Kind: FaultStatus, Status: 429, RetryAfter: 2 * time.Second}, times: 1}, true, false},
		{"[[fakelm:stall,for=50ms]]", directive{fault: Fault{Kind: FaultStall, For: 50 * time.Millisecond}}, true, false},
		{"[[fakelm:truncate,after=5]]", directive{fault: Fault{Kind: FaultTruncate, After: 5}}, true, false},
		{"[[fakelm:garbage]]", directive{fault: Fault{Kind: FaultGarbage}}, true, false},
		{"[[fakelm:context]]", directive{fault: Fault{Kind: FaultContextWindow}}, true, false},
		{"[[fakelm:200]]", directive{}, true, true},
		{"[[fakelm:429,bogus]]", directive{}, true, true},
		{"[[fakelm:429", directive{}, true, true},
	}
	for _, tt := range tests {
		got, ok, err := parseDirective(tt.in)
		if ok != tt.ok || (err != nil) != tt.bad {
			t.Errorf("parseDirective(%q) ok %v err %v", tt.in, ok, err)
			continue
		}
		if !tt.bad {
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(directive{})); diff != "" {
				t.Errorf("parseDirective(%q) (-want +got):\n%s", tt.in, diff)
			}
		}
	}
}

func TestChatJSON(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	res := post(t, s, map[string]any{"model": "m", "messages": msgs(chatUser)})
	var out completion
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	text := out.Choices[0].Message.Content
	for _, want := range []string{"[[ ## reasoning ## ]]\n", "[[ ## answer ## ]]\n", "[[ ## question_type ## ]]\nanalytical\n", "blue"} {
		if !strings.Contains(text, want) {
			t.Errorf("answer lacks %q:\n%s", want, text)
		}
	}
	if !strings.HasSuffix(text, "[[ ## completed ## ]]") || out.Usage.TotalTokens != out.Usage.PromptTokens+out.Usage.CompletionTokens {
		t.Errorf("answer %q usage %+v", text, out.Usage)
	}
	// Deterministic.
	var again completion
	_ = json.NewDecoder(post(t, s, map[string]any{"model": "m", "messages": msgs(chatUser)}).Body).Decode(&again)
	if again.Choices[0].Message.Content != text {
		t.Error("same request, different answer")
	}
	if s.RequestsTo("/v1/chat/completions") != 2 || s.Requests() != 2 {
		t.Errorf("counters: %d %d", s.RequestsTo("/v1/chat/completions"), s.Requests())
	}
}

func TestChatJSONMode(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	res := post(t, s, map[string]any{"model": "m", "messages": msgs(chatUser), "response_format": map[string]any{"type": "json_object"}})
	var out completion
	_ = json.NewDecoder(res.Body).Decode(&out)
	var obj map[string]string
	if err := json.Unmarshal([]byte(out.Choices[0].Message.Content), &obj); err != nil || obj["answer"] == "" || obj["question_type"] == "" {
		t.Errorf("JSON answer %q: %v", out.Choices[0].Message.Content, err)
	}
}

func TestChatStream(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{TokensPerSecond: 100000})
	res := post(t, s, map[string]any{"model": "m", "messages": msgs(chatUser), "stream": true, "stream_options": map[string]any{"include_usage": true}})
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	var text strings.Builder
	var sawUsage, sawDone bool
	var finish string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line %q", line)
		}
		if data == "[DONE]" {
			sawDone = true
			continue
		}
		var c struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *usage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil || c.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %q: %v", data, err)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			sawUsage = len(c.Choices) == 0 && c.Usage.TotalTokens > 0
		}
	}
	if !sawDone || !sawUsage || finish != "stop" || !strings.HasSuffix(text.String(), "[[ ## completed ## ]]") {
		t.Errorf("done %v usage %v finish %q text %q", sawDone, sawUsage, finish, text.String())
	}
}

func TestFaultsAndRPM(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	s.FailNext(1, Status429(1500*time.Millisecond))
	res := post(t, s, map[string]any{"model": "m", "messages": msgs("hi")})
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "2" || res.Header.Get("retry-after-ms") != "1500" {
		t.Errorf("429: %d %v", res.StatusCode, res.Header)
	}
	if res := post(t, s, map[string]any{"model": "m", "messages": msgs("hi [[fakelm:500]]")}); res.StatusCode != 500 {
		t.Errorf("directive 500: %d", res.StatusCode)
	}
	s.SetRPM(1)
	if res := post(t, s, map[string]any{"model": "m", "messages": msgs("a")}); res.StatusCode != 200 {
		t.Errorf("first under RPM: %d", res.StatusCode)
	}
	res = post(t, s, map[string]any{"model": "m", "messages": msgs("b")})
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
		t.Errorf("over RPM: %d", res.StatusCode)
	}
	body, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(body), "rate_limit_exceeded") {
		t.Errorf("429 body %s", body)
	}
}

// TestRPMPerSecond drives the per-second bucket with explicit times: at
// 300/min it holds 5 requests and earns one back every 200 ms.
func TestRPMPerSecond(t *testing.T) {
	t.Parallel()
	s, err := NewUnstarted(Config{RPM: 300, RPMPerSecond: true})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		if _, ok := s.admit(t0); !ok {
			t.Fatalf("request %d of the first second refused", i)
		}
	}
	wait, ok := s.admit(t0)
	if ok || wait != 200*time.Millisecond {
		t.Fatalf("sixth request at once = %v, %v; want refused for 200ms (a sliding minute would take 300)", ok, wait)
	}
	if _, ok := s.admit(t0.Add(199 * time.Millisecond)); ok {
		t.Error("admitted before a request was earned back")
	}
	if _, ok := s.admit(t0.Add(200 * time.Millisecond)); !ok {
		t.Error("refused after 200 ms earned one back")
	}
	// A quiet minute refills one second's requests, not a minute's.
	later := t0.Add(time.Minute)
	n := 0
	for ; n < 300; n++ {
		if _, ok := s.admit(later); !ok {
			break
		}
	}
	if n != 5 {
		t.Errorf("after a quiet minute %d requests admitted at once, want 5", n)
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{Models: []string{"a", "b"}})
	res, err := http.Get(s.URL() + "/models")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Data []struct{ ID string } `json:"data"`
	}
	_ = json.NewDecoder(res.Body).Decode(&out)
	if len(out.Data) != 2 || out.Data[1].ID != "b" {
		t.Errorf("models %+v", out)
	}
}

func FuzzParsePrompt(f *testing.F) {
	f.Add(chatUser)
	f.Add("Respond with a JSON object in the following order of fields: `a`, then `b`.")
	f.Add("[[ ## x ## ]]\n\n[[ ## question ## ]]")
	f.Fuzz(func(t *testing.T, s string) {
		p := parsePrompt(s)
		a := newAnswerer(s, p)
		text := a.text(p, false)
		if strings.Join(tokenize(text), "") != text {
			t.Fatalf("tokens do not concatenate back to %q", text)
		}
		if p.jsonFields || len(p.fields) == 0 {
			return
		}
		for _, f := range p.fields {
			if !strings.Contains(text, "[[ ## "+f+" ## ]]") {
				t.Fatalf("field %q missing from %q", f, text)
			}
		}
	})
}

func FuzzParseDirective(f *testing.F) {
	for _, s := range []string{"[[fakelm:429,retry_after=2s,times=1]]", "[[fakelm:stall,for=1s]]", "[[fakelm:", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok, err := parseDirective(s)
		if !ok && (err != nil || d != (directive{})) {
			t.Fatalf("no directive but %+v, %v", d, err)
		}
		if err == nil && ok && d.fault.Kind == FaultNone {
			t.Fatalf("directive without a kind: %q", s)
		}
	})
}
