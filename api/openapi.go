package api

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/goccy/go-yaml"
)

// OpenAPIYAML is the API's OpenAPI 3.1 document as written (hand-maintained
// YAML; the contract test keeps it true). GET /openapi.json serves it as
// JSON, without the operations still pending (x-pending) whose routes are
// not registered.
//
//go:embed openapi/openapi.yaml
var OpenAPIYAML []byte

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// ginParam matches a gin path parameter (":id") or catch-all ("*path").
var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// OpenAPIPath turns a gin route pattern into an OpenAPI path template:
// /v1/jobs/:id → /v1/jobs/{id}, /static/*path → /static/{path}.
func OpenAPIPath(ginPath string) string {
	return ginParam.ReplaceAllString(ginPath, "{$1}")
}

// openAPIDoc is GET /openapi.json, rendered once (on first use, when every
// route is registered).
type openAPIDoc struct {
	routes func() gin.RoutesInfo
	once   sync.Once
	body   []byte
	etag   string
	err    error
}

func (d *openAPIDoc) render() ([]byte, string, error) {
	d.once.Do(func() {
		registered := map[string]bool{}
		for _, r := range d.routes() {
			registered[r.Method+" "+OpenAPIPath(r.Path)] = true
		}
		d.body, d.err = renderOpenAPI(OpenAPIYAML, registered)
		sum := sha256.Sum256(d.body)
		d.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	})
	return d.body, d.etag, d.err
}

// renderOpenAPI converts the YAML document to JSON, leaving out each pending
// operation whose "METHOD /path" is not in registered, and the paths and tags
// left empty by that.
func renderOpenAPI(doc []byte, registered map[string]bool) ([]byte, error) {
	var root map[string]any
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("parse openapi document: %w", err)
	}
	paths, _ := root["paths"].(map[string]any)
	usedTags := map[string]bool{}
	for path, v := range paths {
		item, _ := v.(map[string]any)
		ops := 0
		for _, m := range httpMethods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			if _, pending := op["x-pending"]; pending && !registered[strings.ToUpper(m)+" "+path] {
				delete(item, m)
				continue
			}
			ops++
			tags, _ := op["tags"].([]any)
			for _, t := range tags {
				usedTags[fmt.Sprint(t)] = true
			}
		}
		if ops == 0 {
			delete(paths, path)
		}
	}
	if tags, ok := root["tags"].([]any); ok {
		kept := tags[:0]
		for _, t := range tags {
			if m, ok := t.(map[string]any); ok && usedTags[fmt.Sprint(m["name"])] {
				kept = append(kept, t)
			}
		}
		root["tags"] = kept
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode openapi document: %w", err)
	}
	return buf.Bytes(), nil
}

// serveOpenAPI is GET /openapi.json.
func (w *webUI) serveOpenAPI(c *gin.Context) {
	body, etag, err := w.doc.render()
	if err != nil {
		w.s.respond(c, err)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Allow-Origin", "*") // a public document: let any docs tool read it
	if match := c.GetHeader("If-None-Match"); match != "" && strings.Contains(match, etag) {
		c.Status(http.StatusNotModified)
		c.Writer.WriteHeaderNow()
		return
	}
	c.Status(http.StatusOK)
	_, _ = c.Writer.Write(body)
}
