package main

import (
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/config"
)

// batchConfig maps the environment onto the batch operations' settings; the
// API and the workers must agree on them (both build their store from it).
func batchConfig(cfg *config.Config) batches.Config {
	return batches.Config{
		ResultTTL:        cfg.Batch.ResultTTL,
		CompletionWindow: cfg.Batch.CompletionWindow,
		QuotaItems:       cfg.Batch.QuotaItemsPerKey,
		QuotaBytes:       int64(cfg.Batch.QuotaBytesPerKey),
	}
}
