//go:build race

package store_test

// raceEnabled: the race detector allocates on its own, so allocation
// bounds are checked without it.
const raceEnabled = true
