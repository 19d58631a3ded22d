package lmclient

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
)

// bundle is one test's fake LM and client.
type bundle struct {
	srv *fakelm.Server
	c   *Client
	cfg Config
}

// setup starts a fake LM and a client for it; mod adjusts the config and
// dependencies before the client is built.
func setup(t testing.TB, mod ...func(*Config, *Deps)) *bundle {
	t.Helper()
	srv, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatalf("start fakelm: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cfg := Config{Model: "openai/gpt-4o-mini", APIBase: srv.URL(), APIKey: "sk-test"}
	var deps Deps
	for _, m := range mod {
		m(&cfg, &deps)
	}
	c := newClient(t, cfg, deps)
	return &bundle{srv: srv, c: c, cfg: cfg}
}

func newClient(t testing.TB, cfg Config, deps Deps) *Client {
	t.Helper()
	c, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// withRedis gives the client a private database on a real redis-server.
func withRedis(db *redistest.DB) func(*Config, *Deps) {
	return func(_ *Config, d *Deps) { d.Redis = db.Client }
}

const systemPrompt = "Your input fields are:\n1. `question` (str): The question to answer\nYour output fields are:\n1. `reasoning` (str): \n2. `answer` (str)\n3. `key_concepts` (str)\n4. `question_type` (str)"

// chatRequest is a DSPy ChatAdapter request for question.
func chatRequest(question string) *program.Request {
	return &program.Request{Messages: []program.Message{
		{Role: "system", Content: systemPrompt},
		{Role: "user", Content: "[[ ## question ## ]]\n" + question + "\n\nRespond with the corresponding output fields, starting with the field `[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]`, then `[[ ## key_concepts ## ]]`, then `[[ ## question_type ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."},
	}}
}

// streamed makes req stream into a slice of deltas.
func streamed(req *program.Request) (*program.Request, *[]string) {
	var deltas []string
	req.OnDelta = func(d string) { deltas = append(deltas, d) }
	return req, &deltas
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func hasMarkers(text string) bool {
	return strings.Contains(text, "[[ ## answer ## ]]") && strings.HasSuffix(text, "[[ ## completed ## ]]")
}
