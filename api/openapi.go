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
	"slices"
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

// renderOpenAPI converts the YAML document to JSON in the document's order
// (Swagger UI lists paths and picks default examples in that order), leaving
// out each pending operation whose "METHOD /path" is not in registered, and
// the paths and tags left empty by that.
func renderOpenAPI(doc []byte, registered map[string]bool) ([]byte, error) {
	var root yaml.MapSlice
	if err := yaml.UnmarshalWithOptions(doc, &root, yaml.UseOrderedMap()); err != nil {
		return nil, fmt.Errorf("parse openapi document: %w", err)
	}
	usedTags := map[string]bool{}
	paths, _ := lookup(root, "paths").(yaml.MapSlice)
	keptPaths := yaml.MapSlice{}
	for _, p := range paths {
		item, _ := p.Value.(yaml.MapSlice)
		kept, ops := yaml.MapSlice{}, 0
		for _, field := range item {
			key := fmt.Sprint(field.Key)
			if op, ok := field.Value.(yaml.MapSlice); ok && slices.Contains(httpMethods, key) {
				if lookup(op, "x-pending") != nil && !registered[strings.ToUpper(key)+" "+fmt.Sprint(p.Key)] {
					continue
				}
				ops++
				tags, _ := lookup(op, "tags").([]any)
				for _, t := range tags {
					usedTags[fmt.Sprint(t)] = true
				}
			}
			kept = append(kept, field)
		}
		if ops > 0 {
			keptPaths = append(keptPaths, yaml.MapItem{Key: p.Key, Value: kept})
		}
	}
	for i, field := range root {
		switch field.Key {
		case "paths":
			root[i].Value = keptPaths
		case "tags":
			tags, _ := field.Value.([]any)
			var kept []any
			for _, t := range tags {
				if m, ok := t.(yaml.MapSlice); ok && usedTags[fmt.Sprint(lookup(m, "name"))] {
					kept = append(kept, t)
				}
			}
			root[i].Value = kept
		}
	}
	var buf bytes.Buffer
	if err := writeOrderedJSON(&buf, root); err != nil {
		return nil, fmt.Errorf("encode openapi document: %w", err)
	}
	return buf.Bytes(), nil
}

// lookup is m[key] for an ordered map.
func lookup(m yaml.MapSlice, key string) any {
	for _, it := range m {
		if fmt.Sprint(it.Key) == key {
			return it.Value
		}
	}
	return nil
}

// writeOrderedJSON writes v as JSON, objects in their YAML order.
func writeOrderedJSON(buf *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case yaml.MapSlice:
		buf.WriteByte('{')
		for i, it := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeOrderedJSON(buf, fmt.Sprint(it.Key)); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := writeOrderedJSON(buf, it.Value); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeOrderedJSON(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	default:
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1) // the encoder's newline
	}
	return nil
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
