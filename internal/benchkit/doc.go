// Package benchkit is the measuring kit shared by qa-bench, the Go
// benchmarks and the fault tests: latency summaries, the pickup measurement
// (enqueue clock, idle Redis commands), processes started from the qa binary
// with their RSS and CPU time, an SSE frame reader, the mixed HTTP load,
// and an OTLP/HTTP trace sink that counts what the processes export.
//
// Nothing here is service code: it measures the service from outside, as a
// client, an operator or a test would.
package benchkit
