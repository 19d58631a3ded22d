package jobs

// Redis key names. Everything a job owns expires: a queued or running job's
// keys after Config.PendingTTL, an ended one's after Config.ResultTTL.

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

// pendingListKey is asynq's pending list for a queue (asynq v0.26 key layout);
// the submit script reads its length to enforce Config.MaxPending without an
// extra round trip.
func pendingListKey(queue string) string { return "asynq:{" + queue + "}:pending" }
