package main

import (
	"testing"

	"github.com/qaqueue/qaqueue/config"
)

// TestWorkerSideConfig: the variables the workers enforce, and the one log
// switch every component follows, reach their components' configs.
func TestWorkerSideConfig(t *testing.T) {
	t.Parallel()
	cfg, _, err := config.Load(config.MapLookup(map[string]string{"TOKEN_BUDGET_PER_DAY": "1000", "LOG_QUESTIONS": "true"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := jobsConfig(cfg).TokenBudgetPerDay; got != 1000 {
		t.Errorf("store.Config.TokenBudgetPerDay = %d, want TOKEN_BUDGET_PER_DAY's 1000", got)
	}
	if !workerConfig(cfg).LogQuestions || !apiConfig(cfg).LogQuestions {
		t.Errorf("LOG_QUESTIONS=true: worker %v, api %v; want both true", workerConfig(cfg).LogQuestions, apiConfig(cfg).LogQuestions)
	}
	def, _, err := config.Load(config.MapLookup(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if workerConfig(def).LogQuestions || apiConfig(def).LogQuestions {
		t.Error("LOG_QUESTIONS defaults to letting question text into the logs")
	}
}
