package main

import (
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/offload"
)

// batchConfig maps the environment onto the batch operations' settings; the
// API and the workers must agree on them (both build their store from it).
func batchConfig(cfg *config.Config) batches.Config {
	return batches.Config{
		ResultTTL:        cfg.Batch.ResultTTL,
		CompletionWindow: cfg.Batch.CompletionWindow,
		QuotaItems:       quota(cfg.Batch.QuotaItemsPerKey),
		QuotaBytes:       quota(int64(cfg.Batch.QuotaBytesPerKey)),
	}
}

// quota maps a quota variable, where 0 is off, onto batches.Config, where 0
// is the default and a negative quota is off.
func quota(v int64) int64 {
	if v == 0 {
		return -1
	}
	return v
}

// offloadConfig maps the environment onto the provider-mode runner's
// settings.
func offloadConfig(cfg *config.Config) offload.Config {
	return offload.Config{
		MaxRequests:  cfg.Batch.ProviderMaxRequests,
		MaxBytes:     int64(cfg.Batch.ProviderMaxBytes),
		PollInterval: cfg.Batch.ProviderPollInterval,
		PollMax:      cfg.Batch.ProviderPollMax,
		Fallback:     cfg.Batch.ProviderFallback,
		Unfinished:   cfg.Batch.ProviderUnfinished,
		DisableUsage: !cfg.LM.TrackUsage,
	}
}
