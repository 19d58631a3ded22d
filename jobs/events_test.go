package jobs_test

import (
	"testing"

	"github.com/qaqueue/qaqueue/jobs"
)

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"0": true, "0-0": true, "1796529197555-0": true, "99999999999999-0": true,
		"18446744073709551615": true, "18446744073709551615-18446744073709551614": true,
		"": false, "-": false, "-1": false, "1-": false, "1-2-3": false, "+1-2": false, "1-+2": false, "a-1": false,
		"1_000-0": false, " 1-0": false,
		"18446744073709551616-0": false, "1-18446744073709551616": false, "99999999999999999999": false,
		"18446744073709551615-18446744073709551615": false, // nothing can follow it
	} {
		if got := jobs.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
