// Package jobs is the contract between the API and the workers: the task type
// and queues, the task payload, the job record that is the source of truth for
// a job's status, the result and event schemas, the Redis key names, and the
// operations on all of them (submit, read, wait, cancel, delete, and the
// worker-side transitions).
//
// Every change to a job record goes through one Lua script (record.lua) that
// also appends the matching event to the job's capped stream and publishes it
// on the job's pub/sub channel, in the same round trip and with the same id.
// The script refuses to leave a terminal state, so a job ends exactly once
// however often asynq runs its task.
//
// The batch contract (statuses, counts, items, result lines, task payloads,
// key names) is here too; the batch machinery is package batches.
package jobs
