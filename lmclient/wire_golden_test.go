package lmclient

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
)

var updateWire = flag.Bool("update-wire", false, "rewrite testdata/wire from this run")

// wireRecorder serves the fake LM and keeps the last request as the
// provider sees it: method, path and query, headers and body.
type wireRecorder struct {
	mu   sync.Mutex
	last string
}

func (w *wireRecorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.last = dumpWire(r, body)
		w.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		next.ServeHTTP(rw, r)
	})
}

func (w *wireRecorder) request() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// sdkVersionHeaders vary with the openai-go, Go and platform versions, not
// with the client's code: their names are pinned, their values are not.
var sdkVersionHeaders = map[string]bool{
	"X-Stainless-Package-Version": true, "X-Stainless-Runtime-Version": true,
	"X-Stainless-Os": true, "X-Stainless-Arch": true,
}

func dumpWire(r *http.Request, body []byte) string {
	var b strings.Builder
	b.WriteString(r.Method + " " + r.URL.RequestURI() + "\n")
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		for _, v := range r.Header[k] {
			if sdkVersionHeaders[k] {
				v = "<version>"
			}
			b.WriteString(k + ": " + v + "\n")
		}
	}
	b.WriteString("\n")
	b.Write(body)
	b.WriteString("\n")
	return b.String()
}

// wireContent has every character class an encoder may treat differently:
// HTML-sensitive, quotes and backslashes, control characters, line and
// paragraph separators, invalid UTF-8, non-ASCII and astral characters.
const wireContent = "[[ ## question ## ]]\nIs <b>a & b</b> \"quoted\" \\ here?\ttab\b\f\r\u0001\u001f\u007f \xff\xe2\x80 \u2028\u2029 é 中文 🙂\n\nRespond with `[[ ## answer ## ]]`."

// TestWireGolden pins, byte for byte, the request each kind of call puts on
// the wire (body, headers, query): plain chat, JSON mode, structured
// outputs, streamed, with the sampling options set, for a reasoning model
// and for Azure. Run with -update-wire to rewrite testdata/wire.
func TestWireGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range wireCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lm, err := fakelm.NewUnstarted(fakelm.Config{})
			if err != nil {
				t.Fatal(err)
			}
			rec := &wireRecorder{}
			srv := httptest.NewServer(rec.wrap(lm.Handler()))
			t.Cleanup(srv.Close)
			c := newClient(t, tc.config(srv.URL+"/v1"), Deps{})
			if _, err := c.Complete(ctxT(t), tc.req()); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			got := strings.ReplaceAll(rec.request(), srv.Listener.Addr().String(), "<host>")
			path := filepath.Join("testdata", "wire", tc.name+".txt")
			if *updateWire {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update-wire to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("wire request differs from %s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// wireCase is one golden vector of testdata/wire: a client config and a
// request.
type wireCase struct {
	name string
	mod  func(*Config)
	req  func() *program.Request
}

// config is the case's client config against the server at base.
func (tc wireCase) config(base string) Config {
	cfg := Config{Model: "openai/gpt-4o-mini", APIBase: base, APIKey: "sk-test"}
	if tc.mod != nil {
		tc.mod(&cfg)
	}
	if cfg.APIKey == "" {
		cfg.LookupEnv = func(string) (string, bool) { return "", false }
	}
	return cfg
}

// wireCases are the golden vectors: plain chat, JSON mode, structured
// outputs, streamed, with the sampling options set, for a reasoning model
// and for Azure.
func wireCases() []wireCase {
	temp, zero, tiny, maxTok, bigTok := 0.7, 0.0, 1e-7, 512, 16000
	schema := `{"type":"object","properties":{"answer":{"type":"string","description":"a <short> & \"plain\" answer"},"score":{"anyOf":[{"type":"number"},{"type":"null"}]}},"required":["answer","score"],"additionalProperties":false,"title":"DSPyProgramOutputs"}`
	chat := func() *program.Request {
		return &program.Request{NoCache: true, Messages: []program.Message{
			{Role: "system", Content: systemPrompt},
			{Role: "user", Content: wireContent},
			{Role: "assistant", Content: "[[ ## answer ## ]]\nno\n\n[[ ## completed ## ]]"},
			{Role: "user", Content: "Again: " + wireContent},
			{Role: "assistant", Content: ""},
			{Role: "user", Content: ""},
		}}
	}
	return []wireCase{
		{"chat", nil, chat},
		{"chat_options", func(c *Config) { c.Temperature, c.MaxTokens = &temp, &maxTok }, chat},
		{"chat_zero_temperature", func(c *Config) { c.Temperature = &zero }, chat},
		{"chat_tiny_temperature", func(c *Config) { c.Temperature = &tiny }, chat},
		{"reasoning_model", func(c *Config) { c.Model, c.MaxTokens = "openai/o3-mini", &bigTok }, chat},
		{"developer_role", nil, func() *program.Request {
			r := chat()
			r.Messages[0].Role = "developer"
			return r
		}},
		{"json_mode", func(c *Config) { c.Temperature = &temp }, func() *program.Request {
			r := chat()
			r.ResponseFormat = &program.ResponseFormat{Type: "json_object"}
			return r
		}},
		{"structured", func(c *Config) { c.MaxTokens = &maxTok }, func() *program.Request {
			r := chat()
			r.ResponseFormat = &program.ResponseFormat{Type: "json_schema", Name: "DSPyProgramOutputs", Schema: []byte(schema), Strict: true}
			return r
		}},
		{"streamed", func(c *Config) { c.Temperature, c.MaxTokens = &temp, &maxTok }, func() *program.Request {
			r := chat()
			r.OnDelta = func(string) {}
			return r
		}},
		{"streamed_structured", nil, func() *program.Request {
			r := chat()
			r.ResponseFormat = &program.ResponseFormat{Type: "json_schema", Name: "DSPyProgramOutputs", Schema: []byte(schema)}
			r.OnDelta = func(string) {}
			return r
		}},
		{"keyless", func(c *Config) { c.APIKey = "" }, chat},
		{"azure", func(c *Config) { c.Model, c.AzureAPIVersion = "azure/my-deploy", "2024-10-21" }, chat},
	}
}
