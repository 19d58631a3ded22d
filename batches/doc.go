// Package batches runs batches in Redis: an upload stored in chunks as it is
// read and committed in one step (with its owner's quotas and
// Idempotency-Key), reads and lists, cancel and the freeing of inputs that
// will not run, the expansion of items into asynq tasks, an item's start and
// end, retry rounds, and the completion-window check.
//
// Every change to a batch goes through one Lua script (batch.lua) that also
// appends the matching progress event to the batch's capped stream and
// publishes it on its channel: jobs.BatchProgress, a template Go rendered
// that the script fills with the counts (store.NewScript). Items stay slots
// of their batch (an input and a result line each), not job records: the
// batch record holds the part of their spec they share (program, options,
// owner, queue), the items hash each one's custom_id and inputs, and an
// item's task its ids alone; the item's start puts its spec together for the
// worker. An item's attempt (ItemAttempt) is the worker's sink for its end,
// as a job's store.Attempt is: a completed item's line carries its result
// and a provenance counting every attempt and its LM calls.
//
// It does not own the batch contract (statuses, counts, items, result lines,
// task payloads, key names: package jobs) nor the job records (package
// store), whose configuration (attempts, job timeout, token budget) items
// share; the HTTP surface is package api's, and running an item is package
// worker's.
package batches
