package main

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

// The Grafana files docker-compose.yml's monitoring profile loads.
const (
	dashboardFile  = "../../deploy/grafana/dashboards/qaqueue.json"
	datasourceFile = "../../deploy/grafana/provisioning/datasources/prometheus.yml"
)

// prometheusSeries are the series Prometheus writes itself for each scrape:
// no collector registers them.
var prometheusSeries = []string{"up"}

// grafanaPanel is what the test reads of a dashboard panel; a row's panels
// are nested when the row is collapsed.
type grafanaPanel struct {
	Title      string          `json:"title"`
	Type       string          `json:"type"`
	Datasource *grafanaDSRef   `json:"datasource"`
	Targets    []grafanaTarget `json:"targets"`
	Panels     []grafanaPanel  `json:"panels"`
}

type grafanaTarget struct {
	Expr       string        `json:"expr"`
	Datasource *grafanaDSRef `json:"datasource"`
}

type grafanaDSRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource *grafanaDSRef   `json:"datasource"`
			Query      json.RawMessage `json:"query"` // a string, or {"query": …}
		} `json:"list"`
	} `json:"templating"`
}

// dashboardQuery is one PromQL expression of the dashboard and where it is.
type dashboardQuery struct {
	where, expr string
	ds          *grafanaDSRef
}

// readDashboard parses the dashboard and returns its queries: every panel
// target's expr and every query variable's PromQL.
func readDashboard(t *testing.T) (grafanaDashboard, []dashboardQuery) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not a valid dashboard: %v", dashboardFile, err)
	}
	if dec.More() {
		t.Fatalf("%s: data after the dashboard's JSON object", dashboardFile)
	}
	var qs []dashboardQuery
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				ds := tg.Datasource
				if ds == nil {
					ds = p.Datasource
				}
				qs = append(qs, dashboardQuery{where: "panel " + p.Title, expr: tg.Expr, ds: ds})
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var obj struct{ Query string }
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				t.Fatalf("variable %s: query %s: %v", v.Name, v.Query, err)
			}
			q = obj.Query
		}
		qs = append(qs, dashboardQuery{where: "variable $" + v.Name, expr: grafanaQueryExpr(q), ds: v.Datasource})
	}
	return d, qs
}

// TestDashboard checks deploy/grafana's dashboard against the code: it is a
// dashboard on the provisioned datasource, its variables and ranges are
// Grafana's, and every metric it queries is registered by the processes'
// real wiring (startAPI and startWorkerStack, as `qa api` and `qa worker`
// build them, with the LM on a provider that has a batch API, so the
// offload runner's metrics are there too).
func TestDashboard(t *testing.T) {
	t.Parallel()
	d, queries := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 39 {
		t.Errorf("dashboard uid %q title %q schemaVersion %d: want a uid, a title and a current schema", d.UID, d.Title, d.SchemaVersion)
	}

	var prov struct {
		Datasources []struct {
			UID, Type, URL string
		}
	}
	b, err := os.ReadFile(datasourceFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prov); err != nil || len(prov.Datasources) != 1 {
		t.Fatalf("%s: %v, %d datasources; want the one Prometheus", datasourceFile, err, len(prov.Datasources))
	}
	ds := prov.Datasources[0]
	if ds.Type != "prometheus" || ds.URL != "http://prometheus:9090" {
		t.Errorf("datasource %+v: want prometheus at http://prometheus:9090 (compose's service)", ds)
	}

	vars := map[string]bool{"__rate_interval": true, "__range": true, "__interval": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	varRef := regexp.MustCompile(`\$\{?(\w+)`)
	rangeSel := regexp.MustCompile(`\[([^\]]*)\]`)
	wanted := map[string][]string{} // metric name → where
	for _, q := range queries {
		if q.ds == nil || q.ds.UID != ds.UID || q.ds.Type != "prometheus" {
			t.Errorf("%s: datasource %+v, want the provisioned uid %q", q.where, q.ds, ds.UID)
		}
		for _, m := range varRef.FindAllStringSubmatch(q.expr, -1) {
			if !vars[m[1]] {
				t.Errorf("%s: $%s is no variable of the dashboard's: %s", q.where, m[1], q.expr)
			}
		}
		// Rates over $__rate_interval follow the scrape interval and the
		// zoom; a fixed window is wrong at one of them.
		for _, m := range rangeSel.FindAllStringSubmatch(q.expr, -1) {
			if m[1] != "$__rate_interval" && m[1] != "$__range" {
				t.Errorf("%s: range [%s], want [$__rate_interval] (or [$__range] for a total): %s", q.where, m[1], q.expr)
			}
		}
		names := promMetricNames(q.expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", q.where, q.expr)
		}
		for _, n := range names {
			wanted[n] = append(wanted[n], q.where)
		}
	}

	api, worker := servedRegistries(t)
	for _, name := range slices.Sorted(maps.Keys(wanted)) {
		where := wanted[name]
		if slices.Contains(prometheusSeries, name) {
			continue
		}
		if !registersMetric(t, api, name) && !registersMetric(t, worker, name) {
			t.Errorf("%s: %s is registered by neither the API's nor the worker's code", strings.Join(slices.Compact(where), ", "), name)
		}
	}
}

// servedRegistries starts an API and a worker as `qa api` and `qa worker`
// do, each on its own registry (the one its /metrics serves), against a
// real Redis and the fake LM, and returns the two registries.
func servedRegistries(t *testing.T) (api, worker *prometheus.Registry) {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	db := redistest.New(t)
	lm, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lm.Close() })
	cfg, _, err := config.Load(config.MapLookup(map[string]string{
		"REDIS_URL": db.URL(), "HOST": "127.0.0.1", "PORT": "0", "WORKER_METRICS_PORT": "0",
		"LM_API_BASE": lm.URL(), "LM_API_KEY": "test", "CACHE_DISK_ENABLED": "false",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := zerolog.Nop()
	worker = newRegistry()
	stack, err := startWorkerStack(ctx, cfg, config.MapLookup(nil), db.Client, log, worker, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.stop)
	api = newRegistry()
	srv, err := startAPI(ctx, cfg, db.Client, db.URL(), log, api, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		srv.stop(sctx)
	})
	return api, worker
}

// registersMetric reports whether reg holds a collector describing the
// series name: a metric of that name, or the histogram or summary whose
// _bucket, _sum, _count or _created series it is.
func registersMetric(t *testing.T, reg *prometheus.Registry, name string) bool {
	t.Helper()
	if holdsName(t, reg, name) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count", "_created"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && base != "" && holdsName(t, reg, base) {
			return true
		}
	}
	return false
}

// holdsName reports whether a collector registered on reg describes a
// metric named name. A Registry refuses a descriptor whose name it holds
// with other label names or help (prometheus.Desc's consistency rule), so
// the probe, whose help is its own, registers only when no collector
// describes the name; it is unregistered at once.
func holdsName(t *testing.T, reg *prometheus.Registry, name string) bool {
	t.Helper()
	p := probe{prometheus.NewDesc(name, "dashboard_test's probe of "+name, nil, nil)}
	if err := prometheus.NewRegistry().Register(p); err != nil {
		t.Fatalf("probe %s: %v", name, err) // not a metric name: the lexer's fault
	}
	if reg.Register(p) != nil {
		return true
	}
	reg.Unregister(p)
	return false
}

type probe struct{ desc *prometheus.Desc }

func (p probe) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }
func (probe) Collect(chan<- prometheus.Metric)      {}

// grafanaQueryExpr is the PromQL of a Prometheus query variable:
// label_values(EXPR, label) and query_result(EXPR) hold an expression;
// label_values(label) and label_names() none.
func grafanaQueryExpr(q string) string {
	q = strings.TrimSpace(q)
	if inner, ok := strings.CutPrefix(q, "label_values("); ok {
		inner = strings.TrimSuffix(inner, ")")
		if i := strings.LastIndexByte(inner, ','); i >= 0 {
			return inner[:i]
		}
		return ""
	}
	if inner, ok := strings.CutPrefix(q, "query_result("); ok {
		return strings.TrimSuffix(inner, ")")
	}
	return q
}

// promWords are PromQL's keywords and aggregation operators, which read as
// identifiers: none is a metric (lower case; PromQL's are case-insensitive).
var promWords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true, "inf": true, "nan": true,
}

// promLabelLists are the keywords followed by a list of label names.
var promLabelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promMetricNames returns the metric names a PromQL expression selects, in
// the order they first appear: its identifiers that are neither keywords,
// functions (an identifier before a parenthesis) nor label names (inside a
// selector's braces, or a by/without/on/ignoring/group_* list). Strings,
// comments, ranges and subqueries in brackets, numbers and durations, and
// Grafana's $variables are skipped. It reads what it cannot parse as
// PromQL the same way, without failing: the test checks the names, not the
// syntax.
func promMetricNames(expr string) []string {
	var names []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipPromString(expr, i)
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '{':
			i = skipPromGroup(expr, i, '{', '}')
		case c == '[':
			i = skipPromGroup(expr, i, '[', ']')
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				i = skipPromGroup(expr, i, '{', '}')
			}
			for i < len(expr) && isPromIdentChar(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isPromIdentChar(expr[i]) || expr[i] == '.') {
				i++
			}
		case isPromIdentStart(c):
			j := i
			for j < len(expr) && isPromIdentChar(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && strings.IndexByte(" \t\r\n", expr[k]) >= 0 {
				k++
			}
			paren := k < len(expr) && expr[k] == '('
			lower := strings.ToLower(word)
			switch {
			case promLabelLists[lower] && paren:
				j = skipPromGroup(expr, k, '(', ')')
			case promWords[lower] || paren:
			case !slices.Contains(names, word):
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names
}

func isPromIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isPromIdentChar(c byte) bool { return isPromIdentStart(c) || c >= '0' && c <= '9' }

// skipPromString returns the index after the string that starts at i
// (double- or single-quoted with backslash escapes, or a raw `string`), or
// len(s) when it does not end.
func skipPromString(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		switch {
		case s[i] == '\\' && q != '`':
			i++
		case s[i] == q:
			return i + 1
		}
	}
	return len(s)
}

// skipPromGroup returns the index after the close that matches the open at
// i, strings and nested groups skipped, or len(s) when none does.
func skipPromGroup(s string, i int, open, close byte) int {
	depth := 0
	for i < len(s) {
		switch c := s[i]; {
		case c == '"' || c == '\'' || c == '`':
			i = skipPromString(s, i)
			continue
		case c == open:
			depth++
		case c == close:
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return len(s)
}

func TestPromMetricNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`rate(qa_http_requests_total{route=~"/v1/.*", status!="200"}[$__rate_interval])`, []string{"qa_http_requests_total"}},
		{`histogram_quantile(0.95, sum by (le, program) (rate(qa_worker_stage_seconds_bucket{program=~"$program"}[5m])))`,
			[]string{"qa_worker_stage_seconds_bucket"}},
		{`sum(rate(a_total[1m])) by (queue) / on (queue) group_left (x) sum without (y) (b)`, []string{"a_total", "b"}},
		{`SUM BY (le) (c) and d or e unless f offset 5m > bool 1e3`, []string{"c", "d", "e", "f"}},
		{`label_replace(g, "dst", "$1 (x) {y}", "src", "(.*)") * 3600 + h[5m:1m] @ start()`, []string{"g", "h"}},
		{`topk(5, i) + count_values("le", j) + quantile(0.9, k) - Inf + NaN`, []string{"i", "j", "k"}},
		{"m{a=\"}\\\"\", b=`}`} # a comment naming n\n+ ns:rule:rate5m", []string{"m", "ns:rule:rate5m"}},
		{`${queue:regex} + [[old]] + $__range + o + o`, []string{"o"}},
		{`sum(`, nil},
	} {
		if diff := cmp.Diff(tc.want, promMetricNames(tc.expr)); diff != "" {
			t.Errorf("promMetricNames(%q) (-want +got):\n%s", tc.expr, diff)
		}
	}
	for _, tc := range []struct{ query, want string }{
		{`label_values(asynq_queue_size{x="a,b"}, queue)`, `asynq_queue_size{x="a,b"}`},
		{`label_values(queue)`, ``},
		{` query_result(topk(3, q)) `, `topk(3, q)`},
		{`r`, `r`},
	} {
		if got := grafanaQueryExpr(tc.query); got != tc.want {
			t.Errorf("grafanaQueryExpr(%q) = %q, want %q", tc.query, got, tc.want)
		}
	}
}

// FuzzPromMetricNames: whatever the input, the names are metric names, no
// keyword, each appears once, and read back as an expression of their own
// they are the same names.
func FuzzPromMetricNames(f *testing.F) {
	f.Add(`histogram_quantile(0.95, sum by (le) (rate(x_bucket{a="b"}[$__rate_interval])))`)
	f.Add("m{a=\"}\"} # c\n+ n offset 5m")
	f.Add(`label_replace(g, "dst", "$1", "src", "(.*)") / on (a) group_left h`)
	valid := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	f.Fuzz(func(t *testing.T, expr string) {
		names := promMetricNames(expr)
		for i, n := range names {
			if !valid.MatchString(n) || promWords[strings.ToLower(n)] || slices.Contains(names[:i], n) {
				t.Fatalf("promMetricNames(%q) = %q: %q", expr, names, n)
			}
		}
		if again := promMetricNames(strings.Join(names, " + ")); !slices.Equal(again, names) && len(names) > 0 {
			t.Fatalf("promMetricNames(%q) = %q, but of their sum %q", expr, names, again)
		}
	})
}
