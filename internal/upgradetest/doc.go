// Package upgradetest checks that an upgrade in place loses nothing: the
// current API and worker take over a Redis database written by a previous
// release, and run, read and replay everything in it.
//
// Each release checked has a fixture under testdata/<commit>/, written by that
// release's own code (gen114 for 114e39c: see its doc comment for how to run
// it): redis.json, the database in internal/redistest's snapshot format, and
// states.json, which says what the database holds (the ids of each job and
// batch, the requests that made them) and how the release's API answered
// GET requests about them. The package has only tests.
package upgradetest
