// Package worker runs the program a queued job names (a Programs source
// gives it compiled; program.go runs its stages in order, a multi-stage
// job's finished stages checkpointed in its record so a retry resumes
// after them): separate asynq servers
// for the interactive and batch queues (so a batch can never take the slots
// interactive work needs; one interactive server per 250 slots, since each
// server starts tasks from one serial dequeue loop); one lifecycle for jobs
// and batch items, parse → start → run → settle (handler.go; kinds.go holds
// what differs), where classify maps a failure to retry / fail / revoke /
// defer and settle is the one place a verdict becomes a write, asynq's next
// step and one log line (a completion's with its cost, cost.go, and the
// usage metrics); token publishing, the cancel listener, and the
// batch's own tasks (batch.go); the worker's liveness key and its turn as
// the fleet's recoverer, which puts a dead worker's jobs and batch items
// back within seconds (liveness.go). It reports only through a sink: the
// job record (package store) or the batch (package batches). With
// Deps.Tracing each attempt continues its job's trace: queued, process and
// stage spans (tracing.go).
package worker
