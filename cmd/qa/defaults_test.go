package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
)

// TestDefaultsAgree: what cmd gives each component for an empty environment
// is what the component's own zero Config means, so a default written in
// config and read by a component cannot drift apart from it.
func TestDefaultsAgree(t *testing.T) {
	t.Parallel()
	def := config.Default()
	for _, c := range []struct {
		name         string
		mapped, zero any
		opts         []cmp.Option
	}{
		{"store", jobsConfig(def).WithDefaults(), store.Config{}.WithDefaults(), nil},
		{"batches", batchConfig(def).WithDefaults(), batches.Config{}.WithDefaults(), nil},
		{"api", apiConfig(def).WithDefaults(), api.Config{}.WithDefaults(), nil},
		// ID is new in each process.
		{"worker", workerConfig(def).WithDefaults(), worker.Config{}.WithDefaults(),
			[]cmp.Option{cmpopts.IgnoreFields(worker.Config{}, "ID")}},
		// A client opts into each cache layer (the disk and Redis layers
		// need a directory or a Redis only the environment names); the
		// service turns them on. CACHE_DIR's default is derived from HOME.
		{"lmclient", lmConfig(def, nil).WithDefaults(), lmclient.Config{}.WithDefaults(),
			[]cmp.Option{cmpopts.IgnoreFields(lmclient.Config{}, "MemoryEnabled", "DiskEnabled", "RedisEnabled", "Dir")}},
	} {
		if diff := cmp.Diff(c.zero, c.mapped, c.opts...); diff != "" {
			t.Errorf("%s: the defaults cmd maps differ from its zero Config's (-zero +mapped):\n%s", c.name, diff)
		}
	}
}

// TestBatchQuotaZeroIsOff: a quota variable set to 0 turns the quota off,
// where batches.Config's zero means the default quota.
func TestBatchQuotaZeroIsOff(t *testing.T) {
	t.Parallel()
	cfg, _, err := config.Load(config.MapLookup(map[string]string{"BATCH_QUOTA_ITEMS_PER_KEY": "0", "BATCH_QUOTA_BYTES_PER_KEY": "0"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := batchConfig(cfg).WithDefaults(); got.QuotaItems >= 0 || got.QuotaBytes >= 0 {
		t.Errorf("quotas %d items, %d bytes; want off (negative)", got.QuotaItems, got.QuotaBytes)
	}
}
