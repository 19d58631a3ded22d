package main

import (
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/config"
)

// batchConfig maps the environment onto the batch operations' settings; the
// API and the workers must agree on them.
func batchConfig(cfg *config.Config) batches.Config {
	return batches.Config{
		ResultTTL:        cfg.Batch.ResultTTL,
		CompletionWindow: cfg.Batch.CompletionWindow,
	}
}
