// Package store keeps the job records in Redis. Jobs creates, reads, starts,
// cancels and deletes them and reads their events; an Attempt is one run's
// handle for a worker's writes. Client submits jobs (the record, then the
// asynq task: Enqueue, ErrUnavailable), cancels and deletes them. Hub fans
// the events of many jobs out over one shared pub/sub connection; Follow
// follows a job's or a batch's events through it (subscribe, replay from an
// id, resync after a reconnect, recheck at heartbeats, end at a terminal
// event): the one loop behind every event stream, long poll and wait
// (Follower.Wait, Jobs.Wait), the batch's source being package batches'.
// It also keeps the fleet's global stats counters (AddStats, ReadStats),
// reads token usage (TokensUsed), and owns the usage accounting: the hourly
// hashes (jobs.UsageStatsKey) that the record and batch scripts add each
// completion to (usage.lua, Jobs.UsageArgs), and their reading (ReadUsage,
// GroupUsage). Workers keeps worker processes' liveness
// and puts a dead worker's running jobs back under new asynq tasks, which
// the record names: a start from any other task is refused (StartTask).
//
// A record holds its job's spec (jobs.Spec) as one field, which Submit
// writes and the start hands to the worker: the asynq task carries the job's
// id alone. A multi-stage job's record also holds a checkpoint per finished
// stage (Attempt.Checkpoint), which the start hands back with the spec, so a
// retry resumes after them at no extra round trip.
//
// Every change to a job record goes through one Lua script (record.lua) that
// also appends the matching event to the job's capped stream and publishes it
// on the job's pub/sub channel, in the same round trip and with the same id
// (all but queued, which nobody can be listening for yet; completed's
// message also carries the record's end, so a wait needs no read after it).
// The script refuses to leave a terminal state, so a job ends exactly once
// however often asynq runs its task. Every event's data is rendered by Go
// from its type in package jobs: passed to the script whole, or, where only
// the script knows a value (the attempt it starts), as a jobs.Template that
// the script fills in (NewScript prepends the templates and events.lua,
// which batch.lua shares).
//
// It does not own the contract (types, key names, queues, events: package
// jobs), nor batches (package batches, which builds on it).
package store
