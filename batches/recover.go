package batches

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// RecoverItems puts back each batch item dead worker id was running (its
// index, jobs.WorkerItemsKey), as store.Workers.Recover does a job: under a
// new task (the item's task id, a dot and its recovery count) that the
// item's start alone accepts from then on, enqueued as the expansion
// enqueues items. The lost run counts toward the item's attempts. It
// returns how many items it put back.
func (b *Store) RecoverItems(ctx context.Context, id string) (int, error) {
	index := jobs.WorkerItemsKey(id)
	members, err := b.rdb.SMembers(ctx, index).Result()
	if err != nil {
		return 0, fmt.Errorf("recover batch items of worker %s: %w", id, err)
	}
	n := 0
	for _, m := range members {
		p, err := jobs.ParseBatchItemPayload([]byte(m))
		if err != nil {
			// Not an item this release wrote: nothing to put back.
			if err := b.rdb.SRem(ctx, index, m).Err(); err != nil {
				return n, fmt.Errorf("recover batch items of worker %s: %w", id, err)
			}
			continue
		}
		reply, err := b.run(ctx, "recover_item", p.Batch, "", "", p.Index, 0, id, m, jobs.BatchItemTaskID(p.Batch, p.Index, p.Round))
		switch {
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrEnded):
			// The batch is gone or has ended: its item will not run again.
			err = b.rdb.SRem(ctx, index, m).Err()
		case err == nil && reply[0] == "recovered":
			err = b.enqueueRecovered(ctx, p, m, reply[1])
			n++
		}
		if err != nil {
			return n, fmt.Errorf("recover item %d of batch %s: %w", p.Index, p.Batch, err)
		}
	}
	return n, nil
}

// RedriveItems enqueues the tasks of the items a recoverer put back but may
// not have enqueued (it died between the two steps), and returns how many.
func (b *Store) RedriveItems(ctx context.Context) (int, error) {
	members, err := b.rdb.SMembers(ctx, jobs.RecoveringItemsKey).Result()
	if err != nil {
		return 0, fmt.Errorf("redrive batch items: %w", err)
	}
	n := 0
	for _, m := range members {
		p, err := jobs.ParseBatchItemPayload([]byte(m))
		task := ""
		if err == nil {
			task, err = b.rdb.HGet(ctx, jobs.BatchAttemptsKey(p.Batch), "task:"+strconv.Itoa(p.Index)).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return n, fmt.Errorf("redrive item %d of batch %s: %w", p.Index, p.Batch, err)
			}
		}
		if err != nil {
			// Gone, or reset by a retry round: nothing to enqueue.
			if err := b.rdb.SRem(ctx, jobs.RecoveringItemsKey, m).Err(); err != nil {
				return n, fmt.Errorf("redrive batch items: %w", err)
			}
			continue
		}
		if err := b.enqueueRecovered(ctx, p, m, task); err != nil {
			return n, fmt.Errorf("redrive item %d of batch %s: %w", p.Index, p.Batch, err)
		}
		n++
	}
	return n, nil
}

// enqueueRecovered adds the task taskID of item p (member: its payload), a
// task already there left as it is, then takes it out of the recovering
// set.
func (b *Store) enqueueRecovered(ctx context.Context, p jobs.BatchItemPayload, member, taskID string) error {
	err := store.Enqueue(ctx, b.aq, asynq.NewTask(jobs.TaskTypeBatchItem, []byte(member)),
		asynq.TaskID(taskID), asynq.Queue(jobs.QueueBatch),
		asynq.MaxRetry(b.jobStore.Config().TaskMaxRetry()), asynq.Timeout(b.jobStore.Config().JobTimeout))
	if err != nil {
		return fmt.Errorf("enqueue task %s: %w", taskID, err)
	}
	return b.rdb.SRem(ctx, jobs.RecoveringItemsKey, member).Err()
}
