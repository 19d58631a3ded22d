package programs_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a goroutine outlives the tests: each test stops
// the registries it runs.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
