// Package jobs is the contract between the API and the workers: what a job
// runs (Spec: the client part a request says, the server part the API sets;
// its validation and its idempotency hash), what a job is (Job, Status,
// Result, Provenance, Error), the asynq task types, queues and payloads, the
// events (one type per event's data, EventData, and the Templates the scripts
// fill in) and stream-id helpers (CompareIDs,
// ValidID), the batch contract (BatchStatus, BatchCounts, Batch, BatchItem,
// ItemResult, the batch task payloads), the Redis key names both sides
// agree on, ids, and the day a token counts toward (UsageDay,
// BudgetResetAt).
//
// It holds no Redis or asynq code: the job records are package store's, the
// batch machinery package batches'.
package jobs
