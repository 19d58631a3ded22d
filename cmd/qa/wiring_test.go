package main

import (
	"testing"

	"github.com/qaqueue/qaqueue/config"
)

// TestWorkerSideConfig: the variables the workers enforce reach their
// components' configs.
func TestWorkerSideConfig(t *testing.T) {
	t.Parallel()
	cfg, _, err := config.Load(config.MapLookup(map[string]string{"TOKEN_BUDGET_PER_DAY": "1000"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := jobsConfig(cfg).TokenBudgetPerDay; got != 1000 {
		t.Errorf("jobs.Config.TokenBudgetPerDay = %d, want TOKEN_BUDGET_PER_DAY's 1000", got)
	}
}
