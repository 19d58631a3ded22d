package jobs_test

import (
	"testing"

	"github.com/qaqueue/qaqueue/jobs"
)

// TestParseBatchItemPayload: an item task's payload is its ids; one release
// 114e39c wrote reads as round 0, its owner and no_cache left to the batch.
func TestParseBatchItemPayload(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]jobs.BatchItemPayload{
		`{"batch":"batch_1","index":3,"round":2,"custom_id":"c3"}`:                              {Batch: "batch_1", Index: 3, Round: 2, CustomID: "c3"},
		`{"batch":{"id":"batch_1","index":3,"custom_id":"c3"},"owner":"alice","no_cache":true}`: {Batch: "batch_1", Index: 3, CustomID: "c3"},
	} {
		got, err := jobs.ParseBatchItemPayload([]byte(in))
		if err != nil || got != want {
			t.Errorf("ParseBatchItemPayload(%s) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{``, `{}`, `{"batch":""}`, `{"batch":{"index":1}}`, `{"batch":7}`, `{"batch":{"id":7}}`, `[]`} {
		if got, err := jobs.ParseBatchItemPayload([]byte(in)); err == nil {
			t.Errorf("ParseBatchItemPayload(%s) = %+v, want an error", in, got)
		}
	}
}
