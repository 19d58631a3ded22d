package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/store"
)

// usagePath is GET /v1/usage's path.
const usagePath = "/v1/usage"

// takesAdminKeys reports whether path takes admin keys as well as API
// keys: the program registry's (programs.go) and usagePath, where an
// admin key sees every key's usage.
func takesAdminKeys(path string) bool { return isProgramsPath(path) || path == usagePath }

// usageQuery is what GET /v1/usage takes in its query.
var usageQuery = []queryParam{{name: "from"}, {name: "to"}, {name: "group_by"}}

// usageDefaultRange is the range GET /v1/usage covers without from: the
// last day.
const usageDefaultRange = 24 * time.Hour

// Group names of GET /v1/usage's group_by; rows are sorted by the names
// in the order group_by gives them.
const (
	groupKey     = "key"
	groupProgram = "program"
	groupVersion = "version"
	groupModel   = "model"
)

var usageGroups = []string{groupKey, groupProgram, groupVersion, groupModel}

// usageRange is a GET /v1/usage request's hours: [From, To), whole UTC
// hours.
type usageRange struct{ From, To time.Time }

// parseUsageRange reads from and to (RFC 3339, or a yyyy-mm-dd day, which
// stands for its 00:00 UTC), each optional: to defaults to now, from to a
// day before to. From is rounded down to its hour, To up to the next hour
// unless on one; to must come after from, at most retention later.
func parseUsageRange(from, to string, now time.Time, retention time.Duration) (usageRange, *apiError) {
	end := now
	if to != "" {
		t, err := parseUsageTime(to)
		if err != nil {
			return usageRange{}, queryError("to", "to must be an RFC 3339 time or a yyyy-mm-dd day, got "+quoteParam(to))
		}
		end = t
	}
	start := end.Add(-usageDefaultRange)
	if from != "" {
		t, err := parseUsageTime(from)
		if err != nil {
			return usageRange{}, queryError("from", "from must be an RFC 3339 time or a yyyy-mm-dd day, got "+quoteParam(from))
		}
		start = t
	}
	switch {
	case !end.After(start):
		return usageRange{}, queryError("to", fmt.Sprintf("to (%s) must come after from (%s)",
			end.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339)))
	case end.Sub(start) > retention:
		return usageRange{}, queryError("from", fmt.Sprintf("from and to may be at most USAGE_RETENTION (%s) apart, which is as long as usage is kept; got %s",
			formatHours(retention), formatHours(end.Sub(start))))
	}
	r := usageRange{From: start.UTC().Truncate(time.Hour), To: end.UTC().Truncate(time.Hour)}
	if r.To.Before(end) {
		r.To = r.To.Add(time.Hour)
	}
	return r, nil
}

// formatHours writes d as whole hours when it is some ("2160h"), else as Go does.
func formatHours(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// parseUsageTime reads an RFC 3339 time or a yyyy-mm-dd day (its 00:00
// UTC).
func parseUsageTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

// quoteParam quotes a query value for a message, cut short if long.
func quoteParam(s string) string {
	const most = 64
	if len(s) > most {
		s = s[:most] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// parseGroupBy reads group_by: a comma-separated list of key, program,
// version and model, each once ("" is key). It returns the names in the
// order given and what store.GroupUsage keeps.
func parseGroupBy(s string) ([]string, store.UsageGroup, *apiError) {
	if s == "" {
		s = groupKey
	}
	var names []string
	var g store.UsageGroup
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(usageGroups, name) {
			return nil, g, queryError("group_by", fmt.Sprintf("group_by must be a comma-separated list of %s, got %s",
				strings.Join(usageGroups, ", "), quoteParam(name)))
		}
		if slices.Contains(names, name) {
			return nil, g, queryError("group_by", "group_by names "+name+" twice: name it once")
		}
		names = append(names, name)
		switch name {
		case groupKey:
			g.Key = true
		case groupProgram:
			g.Program = true
		case groupVersion:
			g.Version = true
		case groupModel:
			g.Model = true
		}
	}
	return names, g, nil
}

// usageCounts are a usage row's or the total's counts as GET /v1/usage
// answers them.
type usageCounts struct {
	Jobs              int64 `json:"jobs"`
	CacheHits         int64 `json:"cache_hits"`
	InputTokens       int64 `json:"input_tokens"`
	CachedInputTokens int64 `json:"cached_input_tokens"`
	OutputTokens      int64 `json:"output_tokens"`
	TotalTokens       int64 `json:"total_tokens"`
	CostMicroUSD      int64 `json:"cost_micro_usd"`
	UnpricedJobs      int64 `json:"unpriced_jobs"`
}

func usageCountsOf(c store.UsageCounts) usageCounts {
	return usageCounts{Jobs: c.Jobs, CacheHits: c.CacheHits, InputTokens: c.InputTokens, CachedInputTokens: c.CachedInputTokens,
		OutputTokens: c.OutputTokens, TotalTokens: c.InputTokens + c.OutputTokens, CostMicroUSD: c.CostMicroUSD, UnpricedJobs: c.UnpricedJobs}
}

// usageRow is one group's row: the names grouped by, then the counts.
type usageRow struct {
	Key     *string `json:"key,omitempty"`
	Program *string `json:"program,omitempty"`
	Version *string `json:"version,omitempty"`
	Model   *string `json:"model,omitempty"`
	usageCounts
}

// usageReport is GET /v1/usage's answer.
type usageReport struct {
	Object  string      `json:"object"`
	From    string      `json:"from"`
	To      string      `json:"to"`
	GroupBy []string    `json:"group_by"`
	Data    []usageRow  `json:"data"`
	Total   usageCounts `json:"total"`
}

// getUsage is GET /v1/usage: what jobs and batch items completed in the
// hours of [from, to) used and cost, grouped as group_by says. An admin key
// sees every key's; any other key its own.
func (s *Server) getUsage(c *gin.Context) {
	retention := s.deps.Store.Config().UsageRetention
	r, aerr := parseUsageRange(c.Query("from"), c.Query("to"), time.Now(), retention)
	if aerr != nil {
		s.respond(c, aerr)
		return
	}
	names, g, aerr := parseGroupBy(c.Query("group_by"))
	if aerr != nil {
		s.respond(c, aerr)
		return
	}
	only := ""
	if !s.isAdmin(c) {
		only = owner(c)
	}
	ctx, cancel := s.redisCtx(c)
	defer cancel()
	rows, err := store.ReadUsage(ctx, s.deps.Redis, r.From, r.To, only)
	if err != nil {
		s.respond(c, err)
		return
	}
	out := usageReport{Object: "usage", From: r.From.Format(time.RFC3339), To: r.To.Format(time.RFC3339), GroupBy: names,
		Data: []usageRow{}}
	grouped := store.GroupUsage(rows, g)
	slices.SortStableFunc(grouped, func(a, b store.UsageRow) int { return compareUsage(a, b, names) })
	var total store.UsageCounts
	for _, row := range grouped {
		total.Add(row.UsageCounts)
		v := usageRow{usageCounts: usageCountsOf(row.UsageCounts)}
		if g.Key {
			v.Key = &row.Key
		}
		if g.Program {
			v.Program = &row.Program
		}
		if g.Version {
			v.Version = &row.Version
		}
		if g.Model {
			v.Model = &row.Model
		}
		out.Data = append(out.Data, v)
	}
	out.Total = usageCountsOf(total)
	writeJSON(c, http.StatusOK, out)
}

// compareUsage orders rows by the names of group_by in its order.
func compareUsage(a, b store.UsageRow, names []string) int {
	for _, n := range names {
		var c int
		switch n {
		case groupKey:
			c = strings.Compare(a.Key, b.Key)
		case groupProgram:
			c = strings.Compare(a.Program, b.Program)
		case groupVersion:
			c = strings.Compare(a.Version, b.Version)
		case groupModel:
			c = strings.Compare(a.Model, b.Model)
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
