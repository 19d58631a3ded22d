package lmclient

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func TestManyConcurrentCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, withMemory)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			req := chatRequest(fmt.Sprintf("Concurrent question number %d?", i%50))
			var got strings.Builder
			if i%2 == 0 {
				req.OnDelta = func(d string) { got.WriteString(d) }
			}
			comp, err := b.c.Complete(ctxT(t), req)
			if err != nil {
				errs <- err
				return
			}
			if req.OnDelta != nil && got.String() != comp.Text {
				errs <- fmt.Errorf("call %d: deltas differ from text", i)
				return
			}
			if err := b.c.Accept(ctxT(t), req, comp); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestReplayChunks(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"", "short", strings.Repeat("word ", 40), strings.Repeat("é", 100), strings.Repeat("日本語", 50) + " tail"} {
		var parts []string
		replay(text, func(d string) { parts = append(parts, d) })
		if strings.Join(parts, "") != text {
			t.Errorf("replay of %q lost text", text)
		}
		for _, p := range parts {
			if p == "" || !utf8.ValidString(p) {
				t.Errorf("chunk %q splits a rune or is empty", p)
			}
		}
		if len(text) > 64 && len(parts) < 2 {
			t.Errorf("a long text should replay in several chunks")
		}
	}
}
