package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// Workers keeps worker processes' liveness and puts back the jobs of the
// ones that died. Each worker renews an alive key (jobs.WorkerAliveKey) that
// expires TTL after its last renewal, and the record script keeps an index
// of the jobs each worker runs (jobs.WorkerJobsKey). A recoverer that finds
// a registered worker without an alive key gives each of its running jobs a
// new asynq task: asynq alone would wait for its 30 s lease and its
// once-a-minute recoverer. The old task is left where it is (its stalled
// worker may still hold a valid lease, and asynq's own writes on it would
// undo a move); the record names the new one, so start refuses the old.
type Workers struct {
	jobs *Jobs
	aq   *asynq.Client
	ttl  time.Duration
}

// NewWorkers returns the liveness of workers whose alive keys live ttl,
// and the recovery of the jobs of those whose keys expired.
func NewWorkers(jobStore *Jobs, ttl time.Duration) *Workers {
	return &Workers{jobs: jobStore, aq: asynq.NewClientFromRedisClient(jobStore.rdb), ttl: ttl}
}

// Renew marks worker id alive for the TTL from now and registers it among
// the workers a recoverer watches, scored by the renewal's time.
func (w *Workers) Renew(ctx context.Context, id string) error {
	_, err := w.jobs.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, jobs.WorkerAliveKey(id), "1", w.ttl)
		p.ZAdd(ctx, jobs.WorkersKey, redis.Z{Score: float64(w.jobs.now().UnixMilli()), Member: id})
		return nil
	})
	if err != nil {
		return fmt.Errorf("renew worker %s: %w", id, err)
	}
	return nil
}

// leaveScript forgets a stopped worker (KEYS[1] its alive key, KEYS[2] its
// job index, KEYS[3] the registered workers, KEYS[4] its batch item index;
// ARGV[1] its id) if its indexes are empty; otherwise its key is left to
// expire, and a recoverer puts back what the indexes hold.
var leaveScript = redis.NewScript(`
if redis.call('SCARD', KEYS[2]) > 0 or redis.call('SCARD', KEYS[4]) > 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1`)

// Leave is a cleanly stopped worker's last word: with no job left in its
// index it is forgotten at once (and reports true); with jobs left (an end
// write Redis refused during the stop), its alive key is left to expire so
// that a recoverer puts them back.
func (w *Workers) Leave(ctx context.Context, id string) (bool, error) {
	n, err := leaveScript.Run(ctx, w.jobs.rdb, []string{jobs.WorkerAliveKey(id), jobs.WorkerJobsKey(id), jobs.WorkersKey, jobs.WorkerItemsKey(id)}, id).Int()
	if err != nil {
		return false, fmt.Errorf("leave worker %s: %w", id, err)
	}
	return n == 1, nil
}

// leaseScript takes (SET NX) or renews (when ARGV[1] holds it) the lease
// KEYS[1] for ARGV[2] ms.
var leaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`)

// Lease takes or renews the recoverer's lease (jobs.RecovererKey) for
// holder, for the TTL, and reports whether holder has it: one recoverer at
// a time in the whole fleet.
func (w *Workers) Lease(ctx context.Context, holder string) (bool, error) {
	n, err := leaseScript.Run(ctx, w.jobs.rdb, []string{jobs.RecovererKey}, holder, ms(w.ttl)).Int()
	if err != nil {
		return false, fmt.Errorf("take recoverer lease: %w", err)
	}
	return n == 1, nil
}

// deadScript lists the registered workers (KEYS[1]) whose alive key has
// expired, and forgets those that have been silent longer than ARGV[2] ms
// before ARGV[1] (now, unix ms) and whose indexes are empty.
var deadScript = redis.NewScript(`
local dead = {}
local ids = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #ids, 2 do
  local id, seen = ids[i], tonumber(ids[i + 1])
  if redis.call('EXISTS', 'qa:worker:' .. id .. ':alive') == 0 then
    if tonumber(ARGV[1]) - seen > tonumber(ARGV[2]) and redis.call('SCARD', 'qa:worker:' .. id .. ':jobs') == 0 and
        redis.call('SCARD', 'qa:worker:' .. id .. ':items') == 0 then
      redis.call('ZREM', KEYS[1], id)
    else
      dead[#dead + 1] = id
    end
  end
end
return dead`)

// forgetAfter is how long, in TTLs, a dead worker with no job left stays
// registered: its index may still receive a start that was in flight when
// it died, which the next scan then puts back.
const forgetAfter = 10

// Dead lists the registered workers whose alive key has expired, and
// forgets those long dead with nothing left. The names of the keys it reads
// are jobs.WorkerAliveKey's, jobs.WorkerJobsKey's and jobs.WorkerItemsKey's.
func (w *Workers) Dead(ctx context.Context) ([]string, error) {
	ids, err := deadScript.Run(ctx, w.jobs.rdb, []string{jobs.WorkersKey}, w.jobs.now().UnixMilli(), ms(forgetAfter*w.ttl)).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list dead workers: %w", err)
	}
	return ids, nil
}

// Recover puts back each job dead worker id was running, under a new task
// (<job id>.<n>, n counting the job's recoveries) enqueued as Submit
// enqueues, and returns the ids of the jobs it put back. The lost attempt
// counts toward the job's attempts, so a job whose workers keep dying
// still ends. A job that ended or moved on meanwhile is only dropped from
// the index.
func (w *Workers) Recover(ctx context.Context, id string) ([]string, error) {
	index := jobs.WorkerJobsKey(id)
	ids, err := w.jobs.rdb.SMembers(ctx, index).Result()
	if err != nil {
		return nil, fmt.Errorf("recover worker %s: %w", id, err)
	}
	reason := mustJSON("worker " + id + " was lost (no liveness renewal within " + w.ttl.String() + "): the attempt runs again")
	var recovered []string
	for _, job := range ids {
		reply, err := w.jobs.run(ctx, "recover", job, [2]string{index, jobs.RecoveringKey}, id, reason)
		if err != nil {
			return recovered, fmt.Errorf("recover worker %s: %w", id, err)
		}
		if reply[0] != "recovered" {
			continue
		}
		if err := w.enqueue(ctx, job, reply[1]); err != nil {
			return recovered, fmt.Errorf("recover worker %s: %w", id, err)
		}
		recovered = append(recovered, job)
	}
	return recovered, nil
}

// Redrive enqueues the tasks of the jobs a recoverer put back but may not
// have enqueued (it died between the two steps), and returns how many. A
// task already there is left as it is.
func (w *Workers) Redrive(ctx context.Context) (int, error) {
	ids, err := w.jobs.rdb.SMembers(ctx, jobs.RecoveringKey).Result()
	if err != nil {
		return 0, fmt.Errorf("redrive recovered jobs: %w", err)
	}
	n := 0
	for _, job := range ids {
		rec, err := w.jobs.rdb.HMGet(ctx, jobs.JobKey(job), "status", "task").Result()
		if err != nil {
			return n, fmt.Errorf("redrive job %s: %w", job, err)
		}
		status, _ := rec[0].(string)
		task, _ := rec[1].(string)
		if status != string(jobs.StatusRetrying) || task == "" {
			// Started again (so enqueued), ended or gone.
			if err := w.jobs.rdb.SRem(ctx, jobs.RecoveringKey, job).Err(); err != nil {
				return n, fmt.Errorf("redrive job %s: %w", job, err)
			}
			continue
		}
		if err := w.enqueue(ctx, job, task); err != nil {
			return n, fmt.Errorf("redrive job %s: %w", job, err)
		}
		n++
	}
	return n, nil
}

// enqueue adds job's task taskID, with the options Submit gives a job's
// task, then takes the job out of the recovering set.
func (w *Workers) enqueue(ctx context.Context, job, taskID string) error {
	j, err := w.jobs.Get(ctx, job)
	if errors.Is(err, ErrNotFound) {
		return w.jobs.rdb.SRem(ctx, jobs.RecoveringKey, job).Err()
	}
	if err != nil {
		return err
	}
	body, err := jobs.Payload{JobID: job}.Marshal()
	if err != nil {
		return fmt.Errorf("enqueue job %s: %w", job, err)
	}
	err = Enqueue(ctx, w.aq, asynq.NewTask(jobs.TaskTypePredict, body), w.jobs.cfg.taskOptions(taskID, j.Spec.Queue)...)
	if err != nil {
		return fmt.Errorf("enqueue job %s task %s: %w", job, taskID, err)
	}
	if err := w.jobs.rdb.SRem(ctx, jobs.RecoveringKey, job).Err(); err != nil {
		return fmt.Errorf("enqueue job %s: %w", job, err)
	}
	return nil
}
