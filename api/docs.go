package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// The web pages: the OpenAPI document, the interactive docs (Swagger UI,
// vendored in web/docs, see its README) and the playground, all embedded so
// the binary needs no network. Pages load their scripts and styles from
// /static/ (no inline script or style), so they work under contentSecurityPolicy.

//go:embed web/docs/index.html web/docs/docs.js web/docs/docs.css
//go:embed web/docs/swagger-ui-bundle.js web/docs/swagger-ui.css
//go:embed web/docs/LICENSE web/docs/NOTICE web/docs/swagger-ui-bundle.js.LICENSE.txt
//go:embed web/playground/index.html web/playground/app.js web/playground/app.css
var webFS embed.FS

// contentSecurityPolicy is sent with the pages: their own scripts, styles and
// API only.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// versionPlaceholder in a page is replaced by the assets' version, so a page
// asks for /static/x.js?v=<version> and a new binary's assets are new URLs.
const versionPlaceholder = "{{version}}"

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	etag  string
	ctype string

	// gz is body gzipped, made on first use (Swagger UI's bundle shrinks
	// from 1.7 MB to about 0.5 MB).
	gzOnce sync.Once
	gz     []byte
}

func newAsset(name string, body []byte) *asset {
	sum := sha256.Sum256(body)
	return &asset{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: contentType(name)}
}

// minGzip is the smallest body worth compressing.
const minGzip = 1024

// gzipped returns the compressed body, or nil when it is not worth it.
func (a *asset) gzipped() []byte {
	if len(a.body) < minGzip {
		return nil
	}
	a.gzOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // a valid level: no error
		_, _ = zw.Write(a.body)                                  // writes to memory do not fail
		_ = zw.Close()
		if buf.Len() < len(a.body) {
			a.gz = buf.Bytes()
		}
	})
	return a.gz
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	}
	return "text/plain; charset=utf-8"
}

// webUI serves the pages, their assets and the OpenAPI document.
type webUI struct {
	s   *Server
	doc *openAPIDoc
	// assets are the files under /static/, by path below web/ (no pages).
	assets  map[string]*asset
	version string
	// pages are the rendered HTML pages, by name ("docs", "playground").
	pages map[string]*asset
}

// webRoutes registers the public documents and pages: GET /openapi.json,
// /docs, the playground at / and their assets under /static/.
func (s *Server) webRoutes(e *gin.Engine) {
	w := newWebUI(s, e.Routes)
	getRoute(e, "/openapi.json", w.serveOpenAPI)
	getRoute(e, "/docs", w.page("docs"))
	getRoute(e, "/", w.page("playground"))
	getRoute(e, "/static/*path", w.serveAsset)
}

// webFiles are the embedded files made ready once per process (they never
// change): the assets, their version and the rendered pages.
var webFiles = sync.OnceValue(func() *webUI {
	w := &webUI{assets: map[string]*asset{}, pages: map[string]*asset{}}
	var names []string
	// The embedded tree is fixed at build time: walking it cannot fail.
	_ = fs.WalkDir(webFS, "web", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	sort.Strings(names)
	all := sha256.New()
	for _, name := range names {
		body, _ := webFS.ReadFile(name)
		if path.Base(name) == "index.html" {
			continue
		}
		a := newAsset(name, body)
		w.assets[strings.TrimPrefix(name, "web/")] = a
		all.Write([]byte(name + a.etag))
	}
	w.version = hex.EncodeToString(all.Sum(nil)[:6])
	for _, page := range []string{"docs", "playground"} {
		body, _ := webFS.ReadFile("web/" + page + "/index.html")
		w.pages[page] = newAsset("index.html", bytes.ReplaceAll(body, []byte(versionPlaceholder), []byte(w.version)))
	}
	return w
})

func newWebUI(s *Server, routes func() gin.RoutesInfo) *webUI {
	files := webFiles()
	return &webUI{s: s, doc: &openAPIDoc{routes: routes}, assets: files.assets, version: files.version, pages: files.pages}
}

// page serves an HTML page: revalidated on each visit, under the CSP.
func (w *webUI) page(name string) gin.HandlerFunc {
	a := w.pages[name]
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		serve(c, a, "no-cache")
	}
}

// serveAsset is GET /static/*path. Asked for with the current ?v=, a file is
// cached for good; otherwise it is revalidated by its ETag.
func (w *webUI) serveAsset(c *gin.Context) {
	a, ok := w.assets[strings.TrimPrefix(c.Param("path"), "/")]
	if !ok {
		w.s.noRoute(c)
		return
	}
	cache := "no-cache"
	if c.Query("v") == w.version {
		cache = "public, max-age=31536000, immutable"
	}
	serve(c, a, cache)
}

// serve writes a, gzipped when the client takes it, answering a matching
// If-None-Match with 304.
func serve(c *gin.Context, a *asset, cacheControl string) {
	h := c.Writer.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", cacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Vary", "Accept-Encoding")
	body, etag := a.body, a.etag
	if gz := a.gzipped(); gz != nil && acceptsGzip(c.GetHeader("Accept-Encoding")) {
		body, etag = gz, strings.TrimSuffix(a.etag, `"`)+`-gz"`
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("ETag", etag)
	http.ServeContent(c.Writer, c.Request, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether an Accept-Encoding header takes gzip.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return !(q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000")
	}
	return false
}
