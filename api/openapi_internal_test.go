package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRenderOpenAPIKeepsOrderAndDropsUnregisteredPending(t *testing.T) {
	t.Parallel()
	doc := []byte(`
openapi: 3.1.0
info: {title: t, version: "1"}
tags:
  - {name: b, description: second}
  - {name: a, description: first}
  - {name: later}
paths:
  /z:
    get: {tags: [b], responses: {"200": {description: ok}}}
  /y:
    parameters: [{name: id, in: query, schema: {type: string}}]
    post: {tags: [later], x-pending: issue 9, responses: {"200": {description: ok}}}
    get: {tags: [a], responses: {"200": {description: ok}}}
  /x:
    get: {tags: [later], x-pending: issue 9, responses: {"200": {description: ok}}}
`)
	for _, tc := range []struct {
		name       string
		registered map[string]bool
		paths      []string
		ops        []string
		tags       []string
	}{
		{"pending unregistered", map[string]bool{"GET /z": true, "GET /y": true},
			[]string{"/z", "/y"}, []string{"GET /z", "GET /y"}, []string{"b", "a"}},
		{"pending registered", map[string]bool{"GET /z": true, "GET /y": true, "POST /y": true, "GET /x": true},
			[]string{"/z", "/y", "/x"}, []string{"GET /z", "POST /y", "GET /y", "GET /x"}, []string{"b", "a", "later"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := renderOpenAPI(doc, tc.registered)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(out), `{"openapi":"3.1.0","info":`) {
				t.Errorf("not in document order: %.80s", out)
			}
			// The order of paths and methods as written, read back with a
			// streaming decoder.
			var paths, ops []string
			dec := json.NewDecoder(strings.NewReader(string(out)))
			depth, path := 0, ""
			inPaths := false
			for {
				tok, err := dec.Token()
				if err != nil {
					break
				}
				switch v := tok.(type) {
				case json.Delim:
					if v == '{' || v == '[' {
						depth++
					} else {
						depth--
						if depth == 1 {
							inPaths = false
						}
					}
				case string:
					if depth == 1 && v == "paths" {
						inPaths = true
					} else if inPaths && depth == 2 && dec.More() {
						path = v
						paths = append(paths, v)
					} else if inPaths && depth == 3 && (v == "get" || v == "post") {
						ops = append(ops, strings.ToUpper(v)+" "+path)
					}
				}
			}
			var doc struct {
				Tags []struct{ Name string }
			}
			if err := json.Unmarshal(out, &doc); err != nil {
				t.Fatal(err)
			}
			var tags []string
			for _, tg := range doc.Tags {
				tags = append(tags, tg.Name)
			}
			if d := cmp.Diff(tc.paths, paths); d != "" {
				t.Errorf("paths (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.ops, ops); d != "" {
				t.Errorf("operations (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.tags, tags); d != "" {
				t.Errorf("tags (-want +got):\n%s", d)
			}
		})
	}
}

func TestOpenAPIPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/v1/jobs/:id/events": "/v1/jobs/{id}/events", "/static/*path": "/static/{path}", "/": "/", "/health": "/health",
	} {
		if got := OpenAPIPath(in); got != want {
			t.Errorf("OpenAPIPath(%q) = %q, want %q", in, got, want)
		}
	}
}
