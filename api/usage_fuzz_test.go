package api

import (
	"slices"
	"testing"
	"time"
)

// FuzzUsageQuery: whatever from, to and group_by hold, GET /v1/usage's
// parsers answer without panicking, and what they accept is a range of
// whole hours, to after from, at most the retention (and the rounding's
// two hours) long, and group names known and each once.
func FuzzUsageQuery(f *testing.F) {
	for _, s := range [][3]string{
		{"", "", ""}, {"2026-01-01", "2026-01-02", "key"}, {"2026-01-01T10:30:00Z", "2026-01-01T12:00:01+02:00", "model,program"},
		{"2026-02-30", "x", "key,key"}, {"0001-01-01", "9999-12-31", "version"}, {"", "2026-01-01T00:00:00Z", " key , model"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	now := time.Date(2026, 12, 6, 16, 29, 57, 0, time.UTC)
	const retention = 2160 * time.Hour
	f.Fuzz(func(t *testing.T, from, to, groupBy string) {
		r, err := parseUsageRange(from, to, now, retention)
		if err == nil {
			if !r.To.After(r.From) || r.From.Truncate(time.Hour) != r.From || r.To.Truncate(time.Hour) != r.To ||
				r.To.Sub(r.From) > retention+2*time.Hour {
				t.Errorf("from %q, to %q: accepted as [%v, %v)", from, to, r.From, r.To)
			}
		} else if err.field != "from" && err.field != "to" {
			t.Errorf("from %q, to %q: refused naming %q", from, to, err.field)
		}
		names, _, gerr := parseGroupBy(groupBy)
		if gerr != nil {
			if gerr.field != "group_by" {
				t.Errorf("group_by %q: refused naming %q", groupBy, gerr.field)
			}
			return
		}
		if len(names) == 0 {
			t.Errorf("group_by %q: no names", groupBy)
		}
		for i, n := range names {
			if !slices.Contains(usageGroups, n) || slices.Contains(names[:i], n) {
				t.Errorf("group_by %q: names %q", groupBy, names)
			}
		}
	})
}
