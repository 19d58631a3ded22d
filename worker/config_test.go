package worker_test

import (
	"math"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
)

// TestNewChecksOwnerShare: BATCH_OWNER_SHARE is a fraction in (0, 1]; zero
// is its default, anything else outside is refused rather than read as "no
// limit".
func TestNewChecksOwnerShare(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	for _, share := range []float64{-0.5, 1.5, math.NaN()} {
		_, err := worker.New(worker.Config{BatchOwnerShare: share}, worker.Deps{Redis: b.db.Client, Store: b.store, Runner: b.runner})
		if err == nil || !strings.Contains(err.Error(), "BatchOwnerShare") {
			t.Errorf("BatchOwnerShare %v: %v, want it refused", share, err)
		}
	}
}
