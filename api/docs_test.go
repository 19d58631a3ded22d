package api_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestWebPagesAndAssets checks how the pages and their assets are served:
// content types, the pages' CSP, caching by ETag and by the build's ?v=,
// gzip, and nothing outside the embedded set.
func TestWebPagesAndAssets(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	var version string
	for _, page := range []string{"/", "/docs"} {
		resp, body := b.do(t, "GET", page, nil, nil)
		h := resp.Header
		if resp.StatusCode != http.StatusOK || h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: %d %q %q", page, resp.StatusCode, h.Get("Content-Type"), h.Get("Cache-Control"))
		}
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("GET %s: CSP %q lacks %s or allows inline code", page, csp, want)
			}
		}
		if regexp.MustCompile(`<script>|<style>|\sstyle=|\son[a-z]+=`).Match(body) {
			t.Errorf("GET %s: the page has inline script or style", page)
		}
		m := regexp.MustCompile(`\?v=([0-9a-f]+)"`).FindSubmatch(body)
		if m == nil || strings.Contains(string(body), "{{version}}") {
			t.Fatalf("GET %s: no asset version in the page", page)
		}
		version = string(m[1])
	}

	want, err := os.ReadFile("web/docs/swagger-ui-bundle.js")
	if err != nil {
		t.Fatal(err)
	}
	const bundle = "/static/docs/swagger-ui-bundle.js"
	resp, body := b.do(t, "GET", bundle+"?v="+version, nil, http.Header{"Accept-Encoding": {"gzip"}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("GET %s (gzip): %d %v", bundle, resp.StatusCode, resp.Header)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
		t.Errorf("with the current ?v=: Cache-Control %q", cc)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("the gzipped bundle (%d bytes) does not decompress to the file (%v)", len(body), err)
	}
	t.Logf("swagger-ui-bundle.js: %d bytes, %d gzipped", len(want), len(body))

	resp, body = b.do(t, "GET", bundle+"?v=old", nil, http.Header{"Accept-Encoding": {"identity"}})
	if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, want) || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("GET %s?v=old: %q %q, %d bytes", bundle, resp.Header.Get("Content-Encoding"), resp.Header.Get("Cache-Control"), len(body))
	}
	etag := resp.Header.Get("ETag")
	if resp, _ = b.do(t, "GET", bundle, nil, http.Header{"If-None-Match": {etag}, "Accept-Encoding": {"identity"}}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %d, want 304", etag, resp.StatusCode)
	}

	for path, ctype := range map[string]string{
		"/static/playground/app.css": "text/css; charset=utf-8", "/static/docs/docs.js": "text/javascript; charset=utf-8",
		"/static/docs/LICENSE": "text/plain; charset=utf-8",
	} {
		if resp, _ := b.do(t, "GET", path, nil, nil); resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ctype {
			t.Errorf("GET %s: %d %q, want %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), ctype)
		}
	}
	for _, path := range []string{"/static/playground/index.html", "/static/docs/README.md", "/static/docs/update.sh", "/static/../docs.go", "/static/"} {
		if resp, _ := b.do(t, "GET", path, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}

// TestDocsPrefillNoIdempotencyKey: Swagger UI fills a parameter's example
// into "Try it out", so a fixed Idempotency-Key example is sent by every try:
// the first gives a job, each later one replays it, and one with an edited
// body is 422. No Idempotency-Key in the served document has a value to
// prefill (an example, examples, or a schema default or example).
func TestDocsPrefillNoIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	resp, body := b.do(t, "GET", "/openapi.json", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d", resp.StatusCode)
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	found := 0
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["name"] == "Idempotency-Key" && v["in"] == "header" {
				found++
				schema, _ := v["schema"].(map[string]any)
				for _, prefill := range []struct {
					where map[string]any
					key   string
				}{{v, "example"}, {v, "examples"}, {schema, "example"}, {schema, "examples"}, {schema, "default"}} {
					if x, ok := prefill.where[prefill.key]; ok {
						t.Errorf("%s: the Idempotency-Key parameter has %s %v, which /docs would send with every try", at, prefill.key, x)
					}
				}
			}
			for k, x := range v {
				walk(at+"/"+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s/%d", at, i), x)
			}
		}
	}
	walk("", doc)
	if found < 2 {
		t.Errorf("found %d Idempotency-Key parameters, want those of POST /v1/jobs and POST /v1/batches", found)
	}
}
