// Package faulttest holds the fault tests: `qa api` and `qa worker` run as
// real processes (built once per test binary) against a real redis-server and
// the fake LM, and the tests kill workers, restart Redis, make the LM fail in
// every way it can, and load the API, checking that no accepted job is lost
// and every job ends once with a clear record. Each test is bounded in time;
// the one that waits for asynq's lease recovery (about a minute) is skipped
// under -short.
package faulttest
