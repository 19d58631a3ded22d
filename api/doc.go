// Package api is qaqueue's HTTP front door: a gin router that validates
// requests, submits jobs through package store, reads job records, relays job
// events as Server-Sent Events from the process's one shared pub/sub
// connection, and serves the Python deployment's endpoints with their exact
// shapes (/predict, /predict/stream, /batch, /health, /metrics), the health
// probes, Prometheus metrics and the asynqmon dashboard.
//
// A job names its program as "name[@alias]"; the API resolves it once, at
// submit (a batch's at create), through the program registry (package
// programs, Deps.Programs) into the spec's program_version, and checks the
// inputs against the program's types (program.Type.Check, through
// jobs.ClientSpec.Validate): program is stdlib-only, so the API validates
// with the very types that render, where a stored JSON Schema would need a
// validator of its own and could drift from them.
//
// The API never calls the LM and never waits on a worker in a loop: a job
// record in Redis is the source of truth, and every wait is a pub/sub
// subscription (store.Follow, store.Jobs.Wait).
//
// Files: server.go (construction, routes, lifecycle), config.go, jobs.go
// (/v1/jobs), programs.go (/v1/programs: pushes, aliases, listings),
// events.go and sse.go (the SSE frames of a follow), seed.go
// (the Python deployment's endpoints), spec.go (the one decoder of a job's
// spec, which every edge's body maps onto), decode.go (request decoders and
// validation), health.go, metrics.go and summary.go (Prometheus and the
// seed's JSON summary), queuemetrics.go (asynq queue gauges), monitoring.go
// (asynqmon), errors.go (the one error responder), middleware.go,
// streamlimit.go (the per-key leases of streams and long polls), head.go
// (HEAD on every GET route) and tracing.go (the request, enqueue and relay
// spans, when Deps.Tracing is set).
package api
