package main

import (
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/jobs"
)

// batchConfig maps the environment onto the batch operations' settings; the
// API and the workers must agree on them.
func batchConfig(cfg *config.Config) jobs.BatchConfig {
	return jobs.BatchConfig{
		ResultTTL:        cfg.Batch.ResultTTL,
		CompletionWindow: cfg.Batch.CompletionWindow,
	}
}
