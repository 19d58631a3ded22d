// Package store keeps the job records in Redis. Jobs creates, reads, starts,
// cancels and deletes them and reads their events; an Attempt is one run's
// handle for a worker's writes. Client submits jobs (the record, then the
// asynq task: Enqueue, ErrUnavailable), cancels and deletes them. Hub fans
// the events of many jobs out over one shared pub/sub connection, and
// Jobs.Wait waits on it for a job's end. It also keeps the fleet's global
// stats counters (AddStats, ReadStats) and reads token usage (TokensUsed).
//
// A record holds its job's spec (jobs.Spec) as one field, which Submit
// writes and the start hands to the worker: the asynq task carries the job's
// id alone.
//
// Every change to a job record goes through one Lua script (record.lua) that
// also appends the matching event to the job's capped stream and publishes it
// on the job's pub/sub channel, in the same round trip and with the same id.
// The script refuses to leave a terminal state, so a job ends exactly once
// however often asynq runs its task.
//
// It does not own the contract (types, key names, queues, events: package
// jobs), nor batches (package batches, which builds on it).
package store
