package lmclient

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/program"
)

// BenchmarkCacheHit is one Complete answered by each layer alone: key
// computation, lookup and decoding included.
func BenchmarkCacheHit(b *testing.B) {
	layers := map[string]func(*Config, *Deps){
		"memory": func(c *Config, _ *Deps) { c.MemoryEnabled = true },
		"disk":   func(c *Config, _ *Deps) { c.DiskEnabled, c.Dir = true, b.TempDir() },
		"redis": func(c *Config, d *Deps) {
			c.RedisEnabled = true
			d.Redis = redistest.New(b).Client
		},
	}
	for _, name := range []string{"memory", "disk", "redis"} {
		b.Run(name, func(b *testing.B) {
			bb := setup(b, layers[name])
			ctx := ctxT(b)
			req := chatRequest("What is the cost of a cache hit?")
			comp, err := bb.c.Complete(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			if err := bb.c.Accept(ctx, req, comp); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c, err := bb.c.Complete(ctx, req)
				if err != nil || !c.CacheHit {
					b.Fatalf("not a hit: %v", err)
				}
			}
		})
	}
}

// longRequest asks for many output fields, so the answer is a long stream.
func longRequest() *program.Request {
	var fields []string
	for i := range 40 {
		fields = append(fields, fmt.Sprintf("`[[ ## field_%d ## ]]`", i))
	}
	return &program.Request{NoCache: true, Messages: []program.Message{{Role: "user", Content: "[[ ## question ## ]]\nHow fast is streaming through the client?\n\nRespond with the corresponding output fields, starting with the field " +
		strings.Join(fields, ", then ") + ", and then ending with the marker for `[[ ## completed ## ]]`."}}}
}

// BenchmarkStream compares a streamed Complete with a bare HTTP read of the
// same SSE bytes from the same instant fake LM: the difference per token is
// the client's own overhead (openai-go chunk decoding, delta delivery).
func BenchmarkStream(b *testing.B) {
	bb := setup(b)
	ctx := ctxT(b)
	tokens := 0
	req := longRequest()
	req.OnDelta = func(string) { tokens++ }
	if _, err := bb.c.Complete(ctx, req); err != nil {
		b.Fatal(err)
	}
	body := bb.srv.LastRequest()
	url := bb.srv.URL() + "/chat/completions"
	hc := &http.Client{Transport: NewTransport()}

	b.Run("raw_http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res, err := hc.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			sc := bufio.NewScanner(res.Body)
			n := 0
			for sc.Scan() {
				if bytes.HasPrefix(sc.Bytes(), []byte("data: ")) {
					n++
				}
			}
			_ = res.Body.Close()
			if n < tokens {
				b.Fatalf("read %d events, want at least %d", n, tokens)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tokens), "ns/token")
	})
	b.Run("client", func(b *testing.B) {
		b.ReportAllocs()
		req := longRequest()
		var n int
		req.OnDelta = func(string) { n++ }
		for b.Loop() {
			if _, err := bb.c.Complete(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tokens), "ns/token")
	})
	b.Logf("%d tokens per answer", tokens)
}
