package telemetry

import "go.opentelemetry.io/otel/attribute"

// Attribute keys of qaqueue's spans. Ours are under qa.; the LM call's
// follow OpenTelemetry's GenAI semantic conventions.
const (
	JobID          = attribute.Key("qa.job.id")
	BatchID        = attribute.Key("qa.batch.id")
	BatchItem      = attribute.Key("qa.batch.item")
	Attempt        = attribute.Key("qa.attempt")
	Queue          = attribute.Key("qa.queue")
	Key            = attribute.Key("qa.key") // the API key's name, never the key
	Program        = attribute.Key("qa.program")
	ProgramVersion = attribute.Key("qa.program.version")
	Stage          = attribute.Key("qa.stage")
	RetryReason    = attribute.Key("qa.retry.reason")
	RetryInMS      = attribute.Key("qa.retry.in_ms")
	LMCacheHit     = attribute.Key("qa.lm.cache_hit")
	// EventsRelayed counts the events an SSE relay sent (snapshots and
	// heartbeats not counted).
	EventsRelayed = attribute.Key("qa.events.relayed")
	// ErrorType is OpenTelemetry's error.type: a class or code, never a
	// message that may quote an input.
	ErrorType = attribute.Key("error.type")

	GenAIOperationName         = attribute.Key("gen_ai.operation.name")
	GenAIProviderName          = attribute.Key("gen_ai.provider.name")
	GenAIRequestModel          = attribute.Key("gen_ai.request.model")
	GenAIResponseModel         = attribute.Key("gen_ai.response.model")
	GenAIUsageInputTokens      = attribute.Key("gen_ai.usage.input_tokens")
	GenAIUsageOutputTokens     = attribute.Key("gen_ai.usage.output_tokens")
	GenAIResponseFinishReasons = attribute.Key("gen_ai.response.finish_reasons")
)
