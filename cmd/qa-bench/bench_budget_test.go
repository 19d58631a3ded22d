package main

import (
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
)

// Every per-job figure lands in the table beside its issue-16 goal: the
// commands and API goals for non-streamed jobs, the worker's for both.
func TestBudgetRowsCarryTheirGoals(t *testing.T) {
	cost := func(cmds float64, api, worker time.Duration) measured {
		return measured{n: 100, rate: 50, cost: benchkit.Cost{
			Commands: map[string]float64{"evalsha": cmds / 2, "hset": cmds / 2},
			CPU:      map[string]time.Duration{"api": api, "worker": worker, "redis": time.Millisecond},
			Mallocs:  map[string]float64{"api": 500, "worker": 1000},
		}}
	}
	r := &scenarioResult{}
	budgetRows(r, cost(58, 200*time.Microsecond, 800*time.Microsecond), cost(90, 600*time.Microsecond, 850*time.Microsecond), 18)
	want := map[string]struct {
		value float64
		goal  string
		met   bool
	}{
		"non-streamed: Redis commands per job": {58, "≤ 40", false},
		"non-streamed: API CPU per job":        {0.2, "≤ 0.25", true},
		"non-streamed: worker CPU per job":     {0.8, "≤ 0.50", false},
		"streamed: worker CPU per job":         {0.85, "≤ 0.90", true},
		"streamed: Redis commands per job":     {90, "", false},
		"streamed: API CPU per job":            {0.6, "", false},
	}
	seen := 0
	for _, row := range r.Rows {
		w, ok := want[row.Metric]
		if !ok {
			continue
		}
		seen++
		if row.Value != w.value || row.Goal != w.goal || (row.Met != nil && *row.Met != w.met) || (row.Met == nil) != (w.goal == "") {
			t.Errorf("%s = %v, goal %q, met %v; want %v, %q, %v", row.Metric, row.Value, row.Goal, row.Met, w.value, w.goal, w.met)
		}
	}
	if seen != len(want) {
		t.Errorf("%d of %d rows found: %+v", seen, len(want), r.Rows)
	}
	if r.Rows[0].Baseline == nil || *r.Rows[0].Baseline != 18 {
		t.Errorf("commands row without the bare asynq baseline: %+v", r.Rows[0])
	}
}
