// Package offload runs a provider-mode batch's LM calls through the
// provider's own batch API (OpenAI's Files and Batches) at its batch
// price, round by round, resumable from Redis.
//
// It owns the runner (Runner.Run), the handler of a batch's one offload
// task (jobs.TaskTypeBatchOffload): a state machine whose state is in
// Redis (batches.Store's offload.go keys), so any worker resumes it where
// the last stopped. A round runs one program stage for every item still to
// do: it renders each item's request with the live path's program code
// (a capturing LM: the LM cache answers what it can, the rest become one
// JSONL line each, streamed up in chunks within the provider's limits,
// never held whole), adopts or creates the chunk's file and provider
// batch (adopt first, so a runner killed between "created" and "recorded"
// bills no second batch), polls, then downloads the answers line by line
// and replays them through the same program code (a replaying LM: the
// first call is the provider's answer; DSPy's fallback after a parse
// failure goes live, or to a further round), filling the LM cache and
// recording each item once through the batch's item lifecycle. Items the
// provider left unanswered (or answered in a batch or file it no longer
// has: a 404) go to the live path (item tasks) or fail, per
// Config.Unfinished; a cancel cancels the provider batches, records what
// they answered (it is billed) and counts the rest cancelled.
//
// It does not own the batch record, its items or their results (package
// batches), the provider's API or the LM (package lmclient), prices
// (package pricing) or the task's queue and retries (package worker).
package offload
