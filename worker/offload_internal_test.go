package worker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/jobs"
)

// A malformed offload task is archived at once, saying what is wrong with
// it (before: "bad offload payload: <nil>" for a payload without its id).
func TestBadOffloadPayloadSaysWhy(t *testing.T) {
	t.Parallel()
	w := &Worker{}
	for payload, want := range map[string]string{
		`{}`:               "no batch_id",
		`{"batch_id":""}`:  "no batch_id",
		`{"batch_id":`:     "unexpected end of JSON input",
		`["not", "a map"]`: "cannot unmarshal",
	} {
		err := w.handleBatchOffload(context.Background(), asynq.NewTask(jobs.TaskTypeBatchOffload, []byte(payload)))
		if !errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), want) {
			t.Errorf("payload %s: err = %v, want SkipRetry saying %q", payload, err, want)
		}
	}
}
