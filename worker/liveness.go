package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qaqueue/qaqueue/store"
	"github.com/rs/zerolog"
)

// liveness keeps this worker's alive key from Start until its servers have
// stopped, and runs its share of the fleet's recoverer: whichever worker
// holds the recoverer lease puts back the jobs of workers whose keys
// expired (store.Workers), seconds after they died instead of asynq's
// minute or two.
type liveness struct {
	workers *store.Workers
	// items puts back batch items as workers does jobs; nil: none.
	items   itemRecoverer
	id      string
	ttl     time.Duration
	log     zerolog.Logger
	metrics *Metrics

	// healthySince is when this worker's current unbroken run of renewals
	// began, lastRenewal when the latest succeeded (unix ns; 0: none).
	healthySince, lastRenewal atomic.Int64

	// redrive is set while the recovering sets may hold work an earlier
	// recoverer (or this one, failing) left: at first, and after an error.
	// Only the recover loop reads and writes it.
	redrive bool

	stopRecover, stopRenew         chan struct{}
	stopRecoverOnce, stopRenewOnce sync.Once
	wg                             sync.WaitGroup
}

// itemRecoverer puts back a dead worker's batch items (batches.Store).
type itemRecoverer interface {
	RecoverItems(ctx context.Context, worker string) (int, error)
	RedriveItems(ctx context.Context) (int, error)
}

func newLiveness(workers *store.Workers, items itemRecoverer, id string, ttl time.Duration, log zerolog.Logger, m *Metrics) *liveness {
	return &liveness{workers: workers, items: items, id: id, ttl: ttl, log: log, metrics: m, redrive: true,
		stopRecover: make(chan struct{}), stopRenew: make(chan struct{})}
}

// start renews the key once (a worker is known before it takes a job),
// then keeps renewing it and recovering in the background.
func (l *liveness) start(ctx context.Context) error {
	if err := l.renew(ctx); err != nil {
		return err
	}
	l.wg.Add(2)
	go l.loop(l.stopRenew, l.ttl/3, l.renewQuietly)
	go l.loop(l.stopRecover, l.ttl/4, l.recover)
	return nil
}

// stopRecovering ends the recoverer (a stopping worker takes on no one's
// jobs; the lease passes on when it expires).
func (l *liveness) stopRecovering() { l.stopRecoverOnce.Do(func() { close(l.stopRecover) }) }

// leave stops the renewals, once the servers have stopped, and forgets the
// worker if it left no job running.
func (l *liveness) leave(ctx context.Context) {
	l.stopRenewOnce.Do(func() { close(l.stopRenew) })
	l.wg.Wait()
	if gone, err := l.workers.Leave(ctx, l.id); err != nil || !gone {
		l.log.Warn().Err(err).Msg("worker stopped with jobs in its index: a recoverer puts them back once its liveness key expires")
	}
}

func (l *liveness) loop(stop <-chan struct{}, every time.Duration, tick func(context.Context)) {
	defer l.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.ttl)
			tick(ctx)
			cancel()
		}
	}
}

func (l *liveness) renewQuietly(ctx context.Context) {
	if err := l.renew(ctx); err != nil {
		l.log.Debug().Err(err).Msg("renew worker liveness")
	}
}

// renew renews the alive key, and keeps count of how long renewals have
// been succeeding without a break: a failure, or a gap longer than the TTL
// (this process was stalled), starts the count again.
func (l *liveness) renew(ctx context.Context) error {
	if err := l.workers.Renew(ctx, l.id); err != nil {
		l.healthySince.Store(0)
		return err
	}
	now := time.Now().UnixNano()
	if l.healthySince.Load() == 0 || now-l.lastRenewal.Load() > int64(l.ttl) {
		l.healthySince.Store(now)
	}
	l.lastRenewal.Store(now)
	return nil
}

// healthy: this worker's own renewals have been succeeding for twice the
// TTL, the latest one recently. Only then may it take another worker's
// silence for death: a Redis outage, a failover or an AOF restart stops
// every worker's renewals, its own included, and must not re-run the whole
// fleet's work.
func (l *liveness) healthy(now time.Time) bool {
	since, last := l.healthySince.Load(), l.lastRenewal.Load()
	return since != 0 && now.UnixNano()-since >= int64(2*l.ttl) && now.UnixNano()-last < int64(l.ttl/2)
}

// recover, while this worker holds the recoverer lease and is healthy,
// enqueues what an earlier recoverer left half done (when it has just
// taken the lease, or failed last time), then puts back the jobs of every
// dead worker.
func (l *liveness) recover(ctx context.Context) {
	held, err := l.workers.Lease(ctx, l.id)
	if err != nil || !held {
		l.redrive = true // the lease may pass to another and back
		return
	}
	if !l.healthy(time.Now()) {
		return
	}
	if l.redrive {
		l.redrive = !l.redriveAll(ctx)
	}
	dead, err := l.workers.Dead(ctx)
	if err != nil {
		l.log.Warn().Err(err).Msg("list dead workers")
		return
	}
	for _, id := range dead {
		if id == l.id {
			continue
		}
		ids, err := l.workers.Recover(ctx, id)
		l.metrics.observeRecovered("job", len(ids))
		items := 0
		if err == nil && l.items != nil {
			items, err = l.items.RecoverItems(ctx, id)
			l.metrics.observeRecovered("batch_item", items)
		}
		if err != nil {
			l.redrive = true // what it moved but did not enqueue
			l.log.Warn().Err(err).Str("lost_worker", id).Int("jobs", len(ids)).Int("batch_items", items).Msg("recover a lost worker's jobs")
			continue
		}
		if len(ids) > 0 || items > 0 {
			l.log.Warn().Str("lost_worker", id).Int("jobs", len(ids)).Strs("job_ids", ids).Int("batch_items", items).
				Msg("worker lost: its running jobs run again")
		}
	}
}

// redriveAll enqueues the jobs and batch items left in the recovering sets,
// and reports whether it got through them all.
func (l *liveness) redriveAll(ctx context.Context) bool {
	ok := true
	if n, err := l.workers.Redrive(ctx); err != nil {
		ok = false
		l.log.Warn().Err(err).Msg("enqueue recovered jobs")
	} else if n > 0 {
		l.log.Info().Int("jobs", n).Msg("enqueued jobs an earlier recoverer put back")
	}
	if l.items != nil {
		if n, err := l.items.RedriveItems(ctx); err != nil {
			ok = false
			l.log.Warn().Err(err).Msg("enqueue recovered batch items")
		} else if n > 0 {
			l.log.Info().Int("items", n).Msg("enqueued batch items an earlier recoverer put back")
		}
	}
	return ok
}
