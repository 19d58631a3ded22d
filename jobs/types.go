package jobs

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status is where a job is in its life. The last four are terminal.
type Status string

// Statuses.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusRetrying  Status = "retrying"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
	StatusExpired   Status = "expired"
)

// Terminal reports whether a job in status s has ended for good.
func (s Status) Terminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCancelled, StatusExpired:
		return true
	}
	return false
}

// BatchRef names an item of a batch.
type BatchRef struct {
	ID       string `json:"id"`
	Index    int    `json:"index"`
	CustomID string `json:"custom_id"`
}

// Payload is the asynq task payload of a job: its id alone. The job's spec
// is in its record, which the start hands to the worker; asynq rewrites the
// payload of every active task to Redis on each heartbeat.
//
// A payload release 114e39c wrote also holds the question, owner, stream
// and no_cache: ParsePayload ignores them, as the record has them too.
type Payload struct {
	JobID string `json:"job_id"`
}

// Marshal encodes the payload for asynq.
func (p Payload) Marshal() ([]byte, error) { return json.Marshal(p) }

// ParsePayload decodes an asynq task payload and checks what a handler needs.
func ParsePayload(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode payload: %w", err)
	}
	if p.JobID == "" {
		return p, fmt.Errorf("decode payload: missing job_id")
	}
	return p, nil
}

// Error is why a job failed, as recorded and as sent to clients.
type Error struct {
	// Code is a stable machine-readable reason: "lm_error", "parse_error",
	// "invalid_payload", "attempts_exhausted", "expired", "timeout".
	Code    string `json:"code"`
	Message string `json:"message"`
	// Status is the LM provider's HTTP status, when it answered one.
	Status int `json:"status,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Provenance says how a result (a job's, or a batch item's line) was
// produced.
type Provenance struct {
	Model       string `json:"model"`
	StateSHA256 string `json:"program_state_sha256"`
	CacheHit    bool   `json:"cache_hit"`
	Attempts    int    `json:"attempts"`
	LMCalls     int    `json:"lm_calls"`
	// Program is the program the job ran (its name, without an alias) and
	// ProgramVersion the version its spec named; "" for the built-in qa
	// program and jobs queued before programs had versions.
	Program        string `json:"program,omitempty"`
	ProgramVersion string `json:"program_version,omitempty"`
	// Path says which path answered a provider-mode batch's item
	// (PathProvider, PathLive after a fallback, PathCache); "" elsewhere.
	Path string `json:"path,omitempty"`
}

// Counted is p, an attempt's, as its job or batch item records it: with
// the attempt's number as attempts, and the LM calls of the earlier
// attempts added to its own.
func (p Provenance) Counted(attempt, earlierLMCalls int) Provenance {
	p.Attempts = attempt
	p.LMCalls += earlierLMCalls
	return p
}

// Result is a completed job's answer.
type Result struct {
	// Outputs holds every output field of the program, reasoning included,
	// in the signature's order.
	Outputs    Outputs    `json:"outputs"`
	Provenance Provenance `json:"provenance"`
	// Usage is DSPy's usage shape: {model: {prompt_tokens, ...}}; {} when every
	// LM call was answered from cache.
	Usage          json.RawMessage `json:"usage"`
	LatencySeconds float64         `json:"latency_seconds"`
	// Stages lists a multi-stage program's stages in order, each with its
	// own usage and LM calls (Usage is their total); absent for a
	// single-stage program.
	Stages []StageUsage `json:"stages,omitempty"`
	// Cost is what the run's LM calls cost, in integer micro-dollars (1e-6
	// USD), at the price table's (LM_PRICES) live prices, or its batch
	// prices for a provider batch's answers: 0 when the LM cache answered
	// every call, null when a model the run used has no price.
	Cost *int64 `json:"cost_micro_usd"`
	// Tokens are Usage's counts by kind, for the usage accounting
	// (UsageStatsKey) and the worker's metrics. Not recorded: Usage is
	// the recorded form, and is null with TRACK_USAGE=false, when the run
	// still counts.
	Tokens TokenCount `json:"-"`
}

// TokenCount is what a run's LM calls used, summed over their models.
// Input counts every prompt token, CachedInput (part of Input) those the
// provider's prompt cache served, Output the completions' (reasoning
// included), as OpenAI reports them.
type TokenCount struct {
	Input, CachedInput, Output int64
}

// StageUsage is what one stage of a multi-stage run cost.
type StageUsage struct {
	// Stage is the stage's key (its predictor's name).
	Stage string `json:"stage"`
	// Usage is the stage's usage in DSPy's shape, as Result.Usage.
	Usage json.RawMessage `json:"usage"`
	// LMCalls counts the stage's LM calls in the attempt that finished it.
	LMCalls  int  `json:"lm_calls"`
	CacheHit bool `json:"cache_hit"`
	// Cost is what the stage cost, as Result.Cost (absent: unknown).
	Cost *int64 `json:"cost_micro_usd,omitempty"`
}

// Checkpoint is a finished stage of a multi-stage job, as its record keeps
// it: a later attempt resumes after it rather than paying for the stage
// again.
type Checkpoint struct {
	StageUsage
	// Outputs are the stage's outputs in its signature's order.
	Outputs Outputs `json:"outputs"`
	// Values are the same outputs as the program's JSON writes them
	// (Python's float forms, object keys in order), so that a resumed run
	// hands the next stage exactly what the stage returned: 1.0 stays a
	// float, where Outputs' JSON reads back as the integer 1.
	Values json.RawMessage `json:"values,omitempty"`
}

// Answer returns the output field name as a string ("" when absent).
func (r *Result) Answer(name string) string {
	if r == nil {
		return ""
	}
	v, _ := r.Outputs.Get(name)
	s, _ := v.(string)
	return s
}

// Job is a job record as read from Redis.
type Job struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	// Spec is what the job runs, as it was submitted.
	Spec       Spec       `json:"spec"`
	Attempts   int        `json:"attempts"`
	Result     *Result    `json:"result,omitempty"`
	Error      *Error     `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}
