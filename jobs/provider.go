package jobs

// Provider offload: a batch whose LM calls go to the provider's own batch
// API (OpenAI's Files and Batches) at its batch price, not one call per
// item. The contract between the API (which accepts ?mode=provider and
// shows the provider object), the batch store (which keeps it) and the
// worker's offload runner (which moves it on).

// BatchMode says how a batch's items reach the LM.
type BatchMode string

// Batch modes. Live, the default, runs every item as its own LM call;
// provider renders them all into the provider's batch files.
const (
	BatchModeLive     BatchMode = "live"
	BatchModeProvider BatchMode = "provider"
)

// Valid reports whether m is a known mode.
func (m BatchMode) Valid() bool { return m == BatchModeLive || m == BatchModeProvider }

// Offload tasks and their queue. Uploading, creating and polling provider
// batches run on a queue of their own, so a slow upload never holds a live
// item's slot and live items never hold back a poll.
const (
	// TaskTypeBatchOffload runs one step of a provider batch's round
	// (render and upload, create, poll, download); payload OffloadPayload.
	TaskTypeBatchOffload = "qa:batch:offload"
	QueueBatchProvider   = "batch_provider"
)

// OffloadPayload names the batch whose provider work a task moves on. The
// round and stage are in the batch's offload state, not the payload: a
// task that runs again after a crash reads where the last one stopped.
type OffloadPayload struct {
	BatchID string `json:"batch_id"`
}

// ProviderPhase is where a provider round is.
type ProviderPhase string

// Provider phases, in order. Uploading covers rendering too (the prompts
// are rendered as the file is streamed up); the middle three are the
// provider's own statuses; downloading covers parsing and recording.
const (
	ProviderUploading   ProviderPhase = "uploading"
	ProviderValidating  ProviderPhase = "validating"
	ProviderInProgress  ProviderPhase = "in_progress"
	ProviderFinalizing  ProviderPhase = "finalizing"
	ProviderDownloading ProviderPhase = "downloading"
	// ProviderDone: no provider work is left; stragglers (live fallbacks)
	// may still be running.
	ProviderDone ProviderPhase = "done"
)

// ProviderProgress is the provider object of a provider-mode batch: shown
// in the batch and carried by its progress events.
type ProviderProgress struct {
	// Name is the provider's ("openai").
	Name  string        `json:"name"`
	Phase ProviderPhase `json:"phase"`
	// Round counts provider rounds from 1: one per stage, more when parse
	// fallbacks go back to the provider.
	Round int `json:"round"`
	// Stage is the program stage the round runs ("" for a one-stage program).
	Stage string `json:"stage,omitempty"`
	// Batches are the provider batches of the round, one per chunk.
	Batches []ProviderBatch `json:"batches,omitempty"`
	// Counts are the round's requests as the provider counts them.
	Counts ProviderCounts `json:"request_counts"`
	// Error is the last provider error that stopped or delayed the round.
	Error *Error `json:"error,omitempty"`
}

// ProviderBatch is one provider batch (a chunk of the round's requests).
type ProviderBatch struct {
	Chunk        int    `json:"chunk"`
	ID           string `json:"id,omitempty"`
	InputFileID  string `json:"input_file_id,omitempty"`
	OutputFileID string `json:"output_file_id,omitempty"`
	ErrorFileID  string `json:"error_file_id,omitempty"`
	// Status is the provider's status of the batch.
	Status   string `json:"status,omitempty"`
	Requests int    `json:"requests"`
}

// ProviderCounts are a provider round's request counts.
type ProviderCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	// Cached counts items the LM cache answered: never sent.
	Cached int `json:"cached"`
}

// BatchCost is what a batch's LM calls cost, in integer micro-dollars, at
// the batch price and, for comparison, at the live price. A nil amount
// means the model is not in the price table.
type BatchCost struct {
	Model string `json:"model"`
	// Micros is what was spent: provider calls at the batch price, live
	// calls (fallbacks, live items) at the live price.
	Micros *int64 `json:"micro_usd"`
	// LiveMicros is what the same calls would have cost live.
	LiveMicros *int64 `json:"live_micro_usd"`
	// ProviderCalls and LiveCalls count the calls each way; a cache hit is
	// neither.
	ProviderCalls int `json:"provider_calls"`
	LiveCalls     int `json:"live_calls"`
}

// Answer paths: which path answered an item, recorded in its result's
// provenance.
const (
	PathLive     = "live"
	PathProvider = "provider"
	PathCache    = "cache"
)
