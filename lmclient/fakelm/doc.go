// Package fakelm is an OpenAI-compatible chat completions server for tests,
// benchmarks and the demo LM of `qa dev`. It is real HTTP, so the LM client is
// exercised through its wire protocol, never through function stubs.
//
// It serves POST /v1/chat/completions (JSON, and SSE when "stream" is true,
// in OpenAI's exact chunk shape with a usage chunk when
// stream_options.include_usage is set) and GET /v1/models. Any path ending in
// /chat/completions is accepted, so Azure-style deployment paths work too.
// It also serves OpenAI's Files and Batches API (see Batches below).
//
// Answers follow DSPy's ChatAdapter format for whatever output fields the last
// user message asks for ("Respond with the corresponding output fields,
// starting with the field `[[ ## a ## ]]`, then …"), or are a JSON object
// with the fields listed in "Respond with a JSON object in the following order
// of fields: `a`, then `b`." when response_format asks for JSON. The text is
// derived from a hash of the request messages: the same request always gets
// the same answer.
//
// Each field gets a value of its type, so any DSPy signature can be tried:
// the types come from the system message DSPy 3.3.1 renders (the "Your output
// fields are:" list for int, float, bool and Literal, and the JSON schema note
// of every other type: lists, dicts, Optional, pydantic models) and, under
// structured outputs, from the response_format's json_schema. A str field
// (the QA program's) is prose, a list[Finding] a list of objects with the
// model's required fields, a Literal one of its values; the chat form writes
// strings bare and the rest as JSON, as DSPy does.
//
// # Faults
//
// Faults can be queued with [Server.FailNext] or requested from inside the
// last user message (so end-to-end tests through an HTTP API can ask for
// them) with a directive:
//
//	[[fakelm:KIND]]  or  [[fakelm:KIND,key=value,...]]
//
// KIND is one of
//
//	429, 500, 503, any status 400-599   an OpenAI-style error with that status
//	context                             400 with code context_length_exceeded
//	stall                               hold the request without answering
//	garbage                             answer text with no field markers
//	truncate                            cut the connection mid-answer
//
// and the options are
//
//	retry_after=DUR   Retry-After (whole seconds) and retry-after-ms headers
//	                  on an error (default 1s for 429)
//	times=N           fault only the first N requests carrying these exact
//	                  messages, then answer normally (default: every time)
//	for=DUR           how long a stall lasts (default: until the client gives up)
//	after=N           how many content chunks a truncated stream sends first
//
// For example "What is 2+2? [[fakelm:429,retry_after=2s,times=1]]" is
// answered with one 429, then normally.
//
// # Batches
//
// POST/GET /v1/files, GET/DELETE /v1/files/{id}, GET /v1/files/{id}/content,
// POST/GET /v1/batches, GET /v1/batches/{id} and POST
// /v1/batches/{id}/cancel answer as OpenAI's do, in its shapes, so
// openai-go's Files and Batches services work against the fake. Uploads
// (purpose "batch") are read as a stream and kept in memory, within
// [BatchConfig]'s MaxFileBytes, MaxStoredBytes and MaxFiles (413
// file_too_large past them); MaxBatches bounds the batches kept.
//
// A batch validates its input file as OpenAI does (each line a POST to
// /v1/chat/completions with a body, unique custom_ids, one model, at most
// MaxRequests lines; else it fails with an errors list naming the line),
// then answers each line with the code that answers a live, non-streamed
// chat completion, directives included, so a line's completion is the live
// one's (bar "created"). Output lines are OpenAI's {"id", "custom_id",
// "response": {"status_code", "request_id", "body"}, "error": null}; failed
// lines go to the error file with their error status and body, and lines a
// cancelled or expired batch never answered with "response": null and
// "error": {"code": "batch_cancelled" or "batch_expired"}. A line's
// [[fakelm:stall]] leaves it unanswered (the batch waits in_progress for it
// until it expires), [[fakelm:truncate]] writes its output line cut short.
// A directive's times counts batch lines and live calls alike, so a line
// with [[fakelm:500,times=1]] fails in its batch and its live retry is
// answered. Queued faults ([Server.FailNext]) are for live calls only.
//
// Time runs on the fake's clock, the wall clock moved on by
// [Server.Advance]. A batch moves on at most one phase (validating →
// in_progress → finalizing → completed) per retrieve or [Server.StepBatches],
// once the phase's BatchConfig duration (default 0) has passed; a batch not
// finalizing by expires_at (created_at + Window, default 24h) expires with
// the lines it answered. Faults: FailEvery and FailStatus fail lines,
// MalformedEvery cuts output lines, StallAfter holds a batch after N lines,
// TokenLimit fails a batch past the enqueued-token limit with
// token_limit_exceeded, OutageRequests (or [Server.FailBatchAPI]) answers
// the files and batches endpoints 503 or 429 with Retry-After.
// [Server.BatchesCreated] counts the batches created, and
// BatchConfig.OnCreate is called with each before its creator is answered.
package fakelm
