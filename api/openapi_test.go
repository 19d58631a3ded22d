package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/worker"
)

// The contract test of GET /openapi.json (api/openapi/openapi.yaml). The
// document is loaded and validated with kin-openapi, whose OpenAPI 3.1 support
// validates values with a JSON Schema 2020-12 validator
// (santhosh-tekuri/jsonschema): type arrays, const, $ref siblings.

// The job ids the document's examples use for fixtures; each case that names
// one gets a fresh job in that state.
const (
	exampleCompletedID  = "211446f2a790fd84ed28b1712bd39cd3"
	exampleRunningID    = "7c3e9b1f0a5d4e6f8a2b1c0d9e8f7a6b"
	exampleBatchID      = "batch_b7f3c2a1d4e5f60718293a4b5c6d7e8f"
	exampleRunningBatch = "batch_5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
	// holdQuestion makes the contract test's worker hold its job until it is
	// cancelled.
	holdQuestion = "Hold until cancelled"
)

var schema2020 = []openapi3.SchemaValidationOption{openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()}

// loadOpenAPI loads and validates the document as written. Examples are
// checked by the tests below instead of by Validate: a request example may be
// invalid on purpose (it shows a 422).
func loadOpenAPI(t *testing.T, data []byte) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		t.Fatalf("load openapi document: %v", err)
	}
	if err := doc.Validate(context.Background(), openapi3.DisableExamplesValidation()); err != nil {
		t.Fatalf("openapi document is invalid: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() || !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	return doc
}

// operation is one documented method and path.
type operation struct {
	method, path string
	item         *openapi3.PathItem
	op           *openapi3.Operation
}

func (o operation) String() string { return o.method + " " + o.path }

func (o operation) pending() bool {
	_, ok := o.op.Extensions["x-pending"]
	return ok
}

func operations(doc *openapi3.T) []operation {
	var out []operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out = append(out, operation{method: method, path: path, item: item, op: op})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// registered lists the server's routes as "METHOD /openapi/{path}"; asynqmon's
// catch-all (every method under /monitoring/) stands as GET /monitoring/.
// Every GET route must answer HEAD too, which the document states once
// (info.description) instead of as a head operation on every path: HEAD
// routes are checked here and left out of the list.
func registered(t *testing.T, srv *api.Server) map[string]bool {
	t.Helper()
	e, ok := srv.Handler().(*gin.Engine)
	if !ok {
		t.Fatalf("Handler() is a %T, not the gin engine", srv.Handler())
	}
	out, head := map[string]bool{}, map[string]bool{}
	for _, r := range e.Routes() {
		switch {
		case strings.HasPrefix(r.Path, "/monitoring/*"):
			out["GET /monitoring/"] = true
		case r.Method == http.MethodHead:
			head[r.Path] = true
		default:
			out[r.Method+" "+api.OpenAPIPath(r.Path)] = true
		}
	}
	for _, r := range e.Routes() {
		switch {
		case strings.HasPrefix(r.Path, "/monitoring/*"):
		case r.Method == http.MethodGet && !head[r.Path]:
			t.Errorf("GET %s does not answer HEAD: register it with getRoute", r.Path)
		case r.Method == http.MethodHead && !out["GET "+api.OpenAPIPath(r.Path)]:
			t.Errorf("HEAD %s has no GET", r.Path)
		}
	}
	return out
}

// TestOpenAPIDocument checks the document itself: it loads as OpenAPI 3.1,
// every JSON response example validates against its schema, every request
// example of a success validates against the request schema, and each
// example case expects exactly one response.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t, api.OpenAPIYAML)
	for _, o := range operations(doc) {
		for code, rref := range o.op.Responses.Map() {
			for ct, mt := range rref.Value.Content {
				if ct != "application/json" || mt.Schema == nil {
					continue
				}
				check := func(name string, v any) {
					if err := mt.Schema.Value.VisitJSON(normalize(t, v), schema2020...); err != nil {
						t.Errorf("%s %s: example %s does not fit its schema: %v", o, code, name, err)
					}
				}
				if mt.Example != nil {
					check("example", mt.Example)
				}
				for name, ex := range mt.Examples {
					check(name, ex.Value.Value)
				}
			}
		}
		for _, c := range cases(t, o) {
			if c.status >= 300 || c.body == nil || c.bodySchema == nil {
				continue
			}
			if err := c.bodySchema.VisitJSON(normalize(t, c.body), schema2020...); err != nil {
				t.Errorf("%s: request example %s (answered %d) does not fit the request schema: %v", o, c.name, c.status, err)
			}
		}
	}
}

// TestOpenAPIRoutes checks that every route gin registers is documented and
// every documented operation is registered — except operations marked
// x-pending (another issue's work in progress), which must go unregistered
// and unserved until the mark is removed.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	doc := loadOpenAPI(t, api.OpenAPIYAML)
	routes := registered(t, b.srv)
	documented := map[string]operation{}
	for _, o := range operations(doc) {
		documented[o.String()] = o
	}
	var missing []string
	for r := range routes {
		if _, ok := documented[r]; !ok {
			missing = append(missing, r)
		}
	}
	sort.Strings(missing)
	for _, r := range missing {
		t.Errorf("route %s is registered but not in api/openapi/openapi.yaml", r)
	}
	for key, o := range documented {
		switch {
		case o.pending() && routes[key]:
			t.Errorf("%s is registered now: remove its x-pending mark (%v) and give it example requests", key, o.op.Extensions["x-pending"])
		case o.pending():
			t.Logf("%s is documented but pending (%v): left out of /openapi.json", key, o.op.Extensions["x-pending"])
		case !routes[key]:
			t.Errorf("%s is in api/openapi/openapi.yaml but not registered", key)
		}
	}

	// The served document: JSON, valid, and only what is registered.
	resp, body := b.do(t, "GET", "/openapi.json", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	served := loadOpenAPI(t, body)
	for _, o := range operations(served) {
		if !routes[o.String()] {
			t.Errorf("/openapi.json serves %s, which is not registered", o)
		}
	}
	if got, want := len(operations(served)), len(routes); got != want {
		t.Errorf("/openapi.json has %d operations, the server %d routes", got, want)
	}
	etag := resp.Header.Get("ETag")
	resp, _ = b.do(t, "GET", "/openapi.json", nil, http.Header{"If-None-Match": {etag}})
	if etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %q: %d, want 304", etag, resp.StatusCode)
	}
}

// exampleCase is one example request of an operation and the answer the
// document promises for it.
type exampleCase struct {
	name   string
	status int
	params map[*openapi3.Parameter]any
	// body is the request body's example (nil: none), sent as bodyType.
	body       any
	bodyType   string
	bodySchema *openapi3.Schema
}

// cases collects an operation's example cases (see the head of openapi.yaml).
func cases(t *testing.T, o operation) []exampleCase {
	t.Helper()
	var params []*openapi3.Parameter
	for _, p := range append(slices.Clone(o.item.Parameters), o.op.Parameters...) {
		params = append(params, p.Value)
	}
	var names []string
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for _, p := range params {
		for name := range p.Examples {
			add(name)
		}
	}
	var bodies map[string]*openapi3.MediaType
	if o.op.RequestBody != nil {
		bodies = o.op.RequestBody.Value.Content
		for _, mt := range bodies {
			for name := range mt.Examples {
				add(name)
			}
		}
	}
	if len(names) == 0 {
		add("default")
	}
	sort.Strings(names)
	var out []exampleCase
	for _, name := range names {
		c := exampleCase{name: name, params: map[*openapi3.Parameter]any{}, status: expectedStatus(t, o, name)}
		for _, p := range params {
			if ex, ok := p.Examples[name]; ok {
				c.params[p] = ex.Value.Value
			} else if p.Required {
				t.Errorf("%s: case %s has no example for the required parameter %s", o, name, p.Name)
			}
		}
		for ct, mt := range bodies {
			if ex, ok := mt.Examples[name]; ok {
				c.body, c.bodyType = ex.Value.Value, ct
				if mt.Schema != nil {
					c.bodySchema = mt.Schema.Value
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// expectedStatus finds the one response that holds an example named name (or
// lists it in x-cases); "default" alone may fall back to the first 2xx.
func expectedStatus(t *testing.T, o operation, name string) int {
	t.Helper()
	var found []int
	first2xx := 0
	for code, rref := range o.op.Responses.Map() {
		n, err := strconv.Atoi(code)
		if err != nil {
			continue
		}
		if n >= 200 && n < 300 && (first2xx == 0 || n < first2xx) {
			first2xx = n
		}
		hit := false
		for _, mt := range rref.Value.Content {
			if _, ok := mt.Examples[name]; ok {
				hit = true
			}
		}
		if xs, ok := rref.Value.Extensions["x-cases"].([]any); ok && slices.Contains(xs, any(name)) {
			hit = true
		}
		if hit {
			found = append(found, n)
		}
	}
	switch {
	case len(found) == 1:
		return found[0]
	case len(found) == 0 && name == "default" && first2xx != 0:
		return first2xx
	}
	t.Errorf("%s: case %s must name exactly one response, names %v", o, name, found)
	return 0
}

// TestOpenAPIExamples sends each documented example request to a running
// service (real Redis, a worker) and checks the documented status, the
// required headers, and that the body validates against the documented
// schema (SSE streams parsed into frames first).
func TestOpenAPIExamples(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.startContractWorker(t, func(ctx context.Context, q string, opts worker.RunOptions) (*worker.RunResult, error) {
		if q == holdQuestion {
			<-ctx.Done() // until cancelled
			return nil, ctx.Err()
		}
		return streamingRunner(ctx, q, opts)
	})
	doc := loadOpenAPI(t, api.OpenAPIYAML)
	ran := 0
	for _, o := range operations(doc) {
		if o.pending() {
			continue
		}
		for _, c := range cases(t, o) {
			ran++
			t.Run(strings.ReplaceAll(o.String(), "/", "_")+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				b.runCase(t, o, c)
			})
		}
	}
	if ran < 20 {
		t.Errorf("only %d example cases", ran)
	}
}

func (b *bundle) runCase(t *testing.T, o operation, c exampleCase) {
	fixtures := map[string]func() string{
		exampleCompletedID: func() string { return b.contractCompletedJob(t) },
		exampleRunningID:   func() string { return b.contractRunningJob(t) },
		exampleBatchID: func() string {
			return b.contractBatch(t, "{\"question\":\"What is DSPy?\"}\n{\"question\":\"What is Go?\"}\n", "completed")
		},
		exampleRunningBatch: func() string {
			return b.contractBatch(t, "{\"question\":\""+holdQuestion+"\"}\n", "in_progress")
		},
	}
	value := func(v any) string {
		s := fmt.Sprint(v)
		if fixture, ok := fixtures[s]; ok {
			return fixture()
		}
		return s
	}
	path := o.path
	query := url.Values{}
	hdr := http.Header{}
	for p, v := range c.params {
		switch p.In {
		case "path":
			path = strings.ReplaceAll(path, "{"+p.Name+"}", value(v))
		case "query":
			query.Set(p.Name, value(v))
		case "header":
			hdr.Set(p.Name, value(v))
		}
	}
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var body any
	if c.body != nil {
		if s, ok := c.body.(string); ok && c.bodyType != "application/json" {
			body = s
		} else {
			j, err := json.Marshal(c.body)
			if err != nil {
				t.Fatal(err)
			}
			body = j
		}
		hdr.Set("Content-Type", c.bodyType)
	}
	resp, got := b.do(t, strings.ToUpper(o.method), path, body, hdr)
	if resp.StatusCode != c.status {
		t.Fatalf("%s %s: status %d, the document says %d; body: %.500s", o.method, path, resp.StatusCode, c.status, got)
	}
	if err := validateResponse(o, resp, got); err != nil {
		t.Errorf("%s %s → %d: %v\nbody: %.800s", o.method, path, resp.StatusCode, err, got)
	}
}

// contractCompletedJob makes a job and waits for the worker to complete it.
func (b *bundle) contractCompletedJob(t *testing.T) string {
	id := b.submit(t, "What is DSPy?")
	testwait.Until(t, "job "+id+" to complete", func() bool { return b.jobStatus(t, id) == jobs.StatusCompleted })
	return id
}

// contractRunningJob makes a job the worker holds until it is cancelled.
func (b *bundle) contractRunningJob(t *testing.T) string {
	id := b.submit(t, holdQuestion)
	testwait.Until(t, "job "+id+" to start", func() bool { return b.jobStatus(t, id) == jobs.StatusRunning })
	return id
}

// startContractWorker runs a worker.Worker that serves jobs and batches on the
// test's Redis, with a scripted program.
func (b *bundle) startContractWorker(t *testing.T, run scriptedRunner) {
	t.Helper()
	bs, err := batches.NewStore(b.store, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b.runWorker(t, worker.Config{
		Concurrency: 8, BatchConcurrency: 4, ShutdownTimeout: 2 * time.Second, ID: "contract",
	}, worker.Deps{Batches: bs, Runner: run})
}

// contractBatch uploads a batch and waits until it has the status want.
func (b *bundle) contractBatch(t *testing.T, jsonl, want string) string {
	type batch struct{ ID, Status string }
	resp, body := b.do(t, "POST", "/v1/batches", jsonl, http.Header{"Content-Type": {"application/x-ndjson"}})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/batches: %d %s", resp.StatusCode, body)
	}
	id := decode[batch](t, body).ID
	testwait.Until(t, "batch "+id+" to be "+want, func() bool {
		_, body := b.do(t, "GET", "/v1/batches/"+id, nil, nil)
		return decode[batch](t, body).Status == want
	})
	return id
}

// validateResponse checks an answer against the documented response for its
// status: required headers, the content type, and the body's schema.
func validateResponse(o operation, resp *http.Response, body []byte) error {
	rref := o.op.Responses.Status(resp.StatusCode)
	if rref == nil {
		return fmt.Errorf("status %d is not documented", resp.StatusCode)
	}
	r := rref.Value
	var errs []string
	for name, h := range r.Headers {
		v := resp.Header.Get(name)
		switch {
		case v == "" && h.Value.Required:
			errs = append(errs, "missing the required header "+name)
		case v != "" && h.Value.Schema != nil:
			if err := h.Value.Schema.Value.VisitJSON(v, schema2020...); err != nil {
				errs = append(errs, fmt.Sprintf("header %s: %v", name, err))
			}
		}
	}
	if len(r.Content) == 0 {
		if len(body) > 0 {
			errs = append(errs, "a body where none is documented")
		}
		return joinErrs(errs)
	}
	ct, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return fmt.Errorf("content type %q: %v", resp.Header.Get("Content-Type"), err)
	}
	mt := r.Content[ct]
	if mt == nil {
		return fmt.Errorf("content type %s is not documented for %d", ct, resp.StatusCode)
	}
	var v any
	switch {
	case ct == "application/json":
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("body is not JSON: %v", err)
		}
	case ct == "text/event-stream":
		v = parseSSEFrames(body)
	case ct == "application/x-ndjson":
		lines := []any{}
		for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			if line == "" {
				continue // a heartbeat
			}
			var l any
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				return fmt.Errorf("line %d is not JSON: %v", len(lines)+1, err)
			}
			lines = append(lines, l)
		}
		v = lines
	default:
		v = string(body)
	}
	if mt.Schema != nil {
		if err := mt.Schema.Value.VisitJSON(v, schema2020...); err != nil {
			errs = append(errs, "body: "+err.Error())
		}
	}
	return joinErrs(errs)
}

func joinErrs(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(errs, "; "))
}

// parseSSEFrames parses an event stream into frames {id?, event?, retry?,
// data}, data decoded from JSON where it is JSON; comments are dropped.
func parseSSEFrames(body []byte) []any {
	var frames []any
	frame := map[string]any{}
	var data []string
	flush := func() {
		if len(data) > 0 {
			joined := strings.Join(data, "\n")
			var v any
			if json.Unmarshal([]byte(joined), &v) == nil {
				frame["data"] = v
			} else {
				frame["data"] = joined
			}
		}
		if len(frame) > 0 {
			frames = append(frames, frame)
		}
		frame, data = map[string]any{}, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		if name == "data" {
			data = append(data, value)
		} else {
			frame[name] = value
		}
	}
	flush()
	return frames
}

// normalize turns a YAML-decoded example into what JSON decoding would give.
func normalize(t *testing.T, v any) any {
	t.Helper()
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("example: %v", err)
	}
	var out any
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenAPIVendoredAssets checks the swagger-ui-dist files against the
// sha256 sums their README records (update.sh writes both).
func TestOpenAPIVendoredAssets(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("web/docs/README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`(?m)^\| (\S+) \| ([0-9a-f]{64}) \|$`).FindAllStringSubmatch(string(readme), -1)
	if len(rows) < 2 {
		t.Fatalf("web/docs/README.md lists %d files", len(rows))
	}
	for _, r := range rows {
		f, err := os.Open("web/docs/" + r[1])
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%x", h.Sum(nil)); got != r[2] {
			t.Errorf("web/docs/%s: sha256 %s, README says %s (run make update-docs-assets)", r[1], got, r[2])
		}
	}
}

// TestOpenAPISecurity checks the documented security against a server with
// API and admin keys: an operation whose security is explicitly empty answers
// without credentials; every other one answers 401 as its documented 401
// response says (WWW-Authenticate included).
func TestOpenAPISecurity(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: secured(t, api.Config{})})
	doc := loadOpenAPI(t, api.OpenAPIYAML)
	for _, o := range operations(doc) {
		if o.pending() {
			continue
		}
		public := o.op.Security != nil && len(*o.op.Security) == 0
		c := cases(t, o)[0]
		path := o.path
		for p, v := range c.params {
			if p.In == "path" {
				path = strings.ReplaceAll(path, "{"+p.Name+"}", fmt.Sprint(v))
			}
		}
		resp, body := b.do(t, strings.ToUpper(o.method), path, nil, nil)
		switch {
		case public && resp.StatusCode == http.StatusUnauthorized:
			t.Errorf("%s is documented public (security: []) but answers 401 without a key", o)
		case !public && resp.StatusCode != http.StatusUnauthorized:
			t.Errorf("%s is documented as needing a key but answers %d without one", o, resp.StatusCode)
		case !public:
			if err := validateResponse(o, resp, body); err != nil {
				t.Errorf("%s → 401: %v (body %s)", o, err, body)
			}
		}
	}
}
