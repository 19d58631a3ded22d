// Package fakelm is an OpenAI-compatible chat completions server for tests,
// benchmarks and the demo LM of `qa dev`. It is real HTTP, so the LM client is
// exercised through its wire protocol, never through function stubs.
//
// It serves POST /v1/chat/completions (JSON, and SSE when "stream" is true,
// in OpenAI's exact chunk shape with a usage chunk when
// stream_options.include_usage is set) and GET /v1/models. Any path ending in
// /chat/completions is accepted, so Azure-style deployment paths work too.
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
package fakelm
