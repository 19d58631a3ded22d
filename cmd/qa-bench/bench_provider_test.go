package main

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
)

// The provider scenario, run small against a real redis-server, qa api and
// qa worker (built from the checkout) and the fake LM's Batch API: every
// figure is in the table, the provider batch's 50 items were answered by
// 50 provider lines in several chunks with no live LM call, and the cost report
// counts them at half the live price.
func TestProviderScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/qa and runs three batches")
	}
	const n = 50
	ctx := context.Background()
	var progress bytes.Buffer
	b, cleanup, err := newBench(ctx, true, "", &progress)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	t.Cleanup(cleanup)
	s := &scope{b: b, name: "provider"}
	r := &scenarioResult{}
	err = providerScenario(ctx, s, r, n)
	s.close()
	if err != nil {
		t.Fatalf("provider scenario: %v\n%s", err, progress.String())
	}
	rows := map[string]benchRow{}
	for _, row := range r.Rows {
		// A growth between two processes may be negative: each process's
		// RSS has its own noise (seen: -7.6 MiB per 1,000 items at 12 → 50).
		negative := row.Value < 0 && !strings.Contains(row.Metric, "growth")
		if math.IsNaN(row.Value) || math.IsInf(row.Value, 0) || negative {
			t.Errorf("%s = %v", row.Metric, row.Value)
		}
		rows[row.Metric] = row
	}
	want := map[string]struct {
		value float64 // -1: any
		met   bool    // the goal is met (checked when the row has one)
	}{
		"worker CPU per item":                              {-1, false},
		"API CPU per item":                                 {-1, false},
		"Redis commands per item":                          {-1, false},
		"wall time, submit → ended, per item":              {-1, false},
		"peak worker RSS":                                  {-1, false},
		"peak worker RSS growth per 1,000 items (12 → 50)": {-1, false},
		"live LM calls (chat completions)":                 {0, true},
		"provider batch lines answered":                    {n, true},
		"provider batches (chunks)":                        {-1, true},
		"cost report: provider calls":                      {n, true},
		"cost ÷ live cost":                                 {-1, true},
	}
	for metric, w := range want {
		row, ok := rows[metric]
		if !ok {
			t.Errorf("no %q row in %+v", metric, r.Rows)
			continue
		}
		if w.value >= 0 && row.Value != w.value {
			t.Errorf("%s = %v; want %v", metric, row.Value, w.value)
		}
		if w.met && (row.Met == nil || !*row.Met) {
			t.Errorf("%s = %v: goal %q not met", metric, row.Value, row.Goal)
		}
	}
	if row := rows["live LM calls (chat completions)"]; row.Baseline == nil || *row.Baseline != n {
		t.Errorf("the live run's LM calls = %v; want %d, one per item", row.Baseline, n)
	}
	if row := rows["peak worker RSS"]; row.Value == 0 || row.Baseline == nil || *row.Baseline == 0 {
		t.Errorf("peak worker RSS = %v, live %v: want both measured", row.Value, row.Baseline)
	}
	if row := rows["peak worker Go heap (at a GC's start)"]; row.Value == 0 || row.Baseline == nil || *row.Baseline == 0 {
		t.Errorf("peak worker Go heap = %v, live %v: want both read from gctrace", row.Value, row.Baseline)
	}
	if row := rows["Redis commands per item"]; row.Value == 0 || row.Baseline == nil || *row.Baseline == 0 {
		t.Errorf("Redis commands per item = %v, live %v: want both measured", row.Value, row.Baseline)
	}
}
