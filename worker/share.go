package worker

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
)

// ownerShare is why an item is put back when its owner holds its share of
// this worker's batch slots.
var ownerShare = &jobs.Error{Code: "owner_share", Message: "owner is at its share of the batch workers"}

// ownerShareDelay is how long an item over its owner's share waits before it
// is offered again (asynq adds up to a second; see notBefore).
const ownerShareDelay = 250 * time.Millisecond

// ownerSlots counts each owner's running items in this process and refuses
// more than limit while other owners have batches running (alone, an owner
// may use every slot: the share is a fairness rule, not a cap). Per process
// rather than in Redis: each worker's batch slots are split the same way, so
// the fleet's are too, and a crashed worker's counts vanish with it instead
// of leaking.
type ownerSlots struct {
	limit int
	mu    sync.Mutex
	n     map[string]int

	// contended caches whether more than one owner has batches running.
	checked   time.Time
	contended bool
}

// contendedEvery is how long the active-owners count is trusted.
const contendedEvery = time.Second

// isContended reports whether owners compete for the batch slots, asking
// Redis at most once per contendedEvery; on an error it assumes they do.
func (o *ownerSlots) isContended(ctx context.Context, count func(context.Context) (int64, error)) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if time.Since(o.checked) < contendedEvery {
		return o.contended
	}
	n, err := count(ctx)
	o.contended, o.checked = err != nil || n > 1, time.Now()
	return o.contended
}

func newOwnerSlots(share float64, concurrency int) *ownerSlots {
	limit := concurrency
	if share > 0 && share < 1 {
		limit = max(1, int(math.Ceil(share*float64(concurrency))))
	}
	return &ownerSlots{limit: limit, n: map[string]int{}}
}

func (o *ownerSlots) acquire(owner string, contended bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if contended && o.n[owner] >= o.limit {
		return false
	}
	o.n[owner]++
	return true
}

func (o *ownerSlots) release(owner string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n[owner]--; o.n[owner] <= 0 {
		delete(o.n, owner)
	}
}
