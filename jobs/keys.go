package jobs

import "time"

// Redis key names. Everything a job owns expires: a queued or running job's
// keys after store.Config.PendingTTL, an ended one's after
// store.Config.ResultTTL.

// TaskTypePredict is the asynq task type of a question to answer.
const TaskTypePredict = "qa:predict"

// Queue names. Interactive work has its own asynq server so batches can never
// take its slots.
const (
	QueueInteractive = "interactive"
	QueueBatch       = "batch"
)

// CancelChannel carries the ids of cancelled jobs to every worker.
const CancelChannel = "qa:cancel"

// JobKey is the job record hash.
func JobKey(id string) string { return "qa:job:" + id }

// EventsKey is the job's capped event stream.
func EventsKey(id string) string { return "qa:job:" + id + ":events" }

// Channel is the job's pub/sub channel; messages carry the stream id. It has
// the record's name, which is fine: channels and keys are separate namespaces.
func Channel(id string) string { return "qa:job:" + id }

// IdempotencyKey scopes a client's Idempotency-Key to its owner.
func IdempotencyKey(owner, keyHash string) string { return "qa:idem:" + owner + ":" + keyHash }

// Worker liveness and the index of running jobs (store.Workers): a worker
// whose alive key has expired is taken for dead, and the jobs its index
// holds run again elsewhere.
const (
	// WorkersKey is a sorted set of worker ids scored by their last
	// liveness renewal (unix ms).
	WorkersKey = "qa:workers"
	// RecovererKey is the lease of the one worker that recovers dead
	// workers' jobs.
	RecovererKey = "qa:workers:recoverer"
	// RecoveringKey holds the ids of jobs a recoverer has put back but may
	// not have enqueued yet.
	RecoveringKey = "qa:workers:recovering"
	// RecoveringItemsKey is RecoveringKey for batch items, by their task
	// payload.
	RecoveringItemsKey = "qa:workers:recovering_items"
)

// WorkerAliveKey exists while worker id renews it.
func WorkerAliveKey(id string) string { return "qa:worker:" + id + ":alive" }

// WorkerJobsKey is the set of job ids worker id is running: the record
// script adds a job at its start and removes it at the attempt's end.
func WorkerJobsKey(id string) string { return "qa:worker:" + id + ":jobs" }

// WorkerItemsKey is the set of batch items worker id is running, by their
// task payload: the batch script adds an item at its start and removes it
// at the run's end.
func WorkerItemsKey(id string) string { return "qa:worker:" + id + ":items" }

// Keys of the global counters behind the seed's JSON metrics summary (GET
// /metrics with Accept: application/json). Every API replica adds its counts
// about once a second, so the summary covers the whole fleet. There are only
// these few keys, so they do not expire.
const (
	// StatsStartedKey holds the unix milliseconds of the first start (SET NX).
	StatsStartedKey      = "qa:stats:started_at"
	StatsRequestsKey     = "qa:stats:requests"
	StatsErrorsKey       = "qa:stats:errors"
	StatsLatencySumKey   = "qa:stats:latency_seconds"
	StatsLatencyCountKey = "qa:stats:latency_count"
	StatsTokensKey       = "qa:stats:tokens"
)

// UsageStatsKey is the usage accounting's hash of the UTC hour hour
// (yyyy-mm-ddThh, UsageHour): one field per (API key name, program,
// program version, model, counter), which the record script's complete and
// the batch script's result fill add to, atomically with the completion, so
// each counts once. It expires USAGE_RETENTION after its hour's end. Package
// store owns its fields (store.ReadUsage).
func UsageStatsKey(hour string) string { return "qa:usage:" + hour }

// UsageHourLayout is the time layout of a UsageStatsKey's hour.
const UsageHourLayout = "2006-01-02T15"

// UsageHour is the UTC hour t falls in, as UsageStatsKey names it.
func UsageHour(t time.Time) string { return t.UTC().Format(UsageHourLayout) }
