package worker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/testlog"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
	"github.com/rs/zerolog"
)

// logLines decodes the JSON log lines written so far.
func logLines(logs *testlog.Buffer) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// A duration in the logs says its unit in its name: "took": 812.3 reads as
// seconds as easily as milliseconds.
func TestLogDurationsNameTheirUnit(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Config{})
	var logs testlog.Buffer
	w, err := worker.New(worker.Config{ShutdownTimeout: 5 * time.Second},
		worker.Deps{Redis: b.db.Client, Store: b.store, Runner: b.runner, Log: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	id := b.submit(t, ask("flaky [[fakelm:500,times=1]]", "", jobs.Options{}))
	if j := b.waitEnd(t, id); j.Status != jobs.StatusCompleted {
		t.Fatalf("job = %+v", j)
	}
	w.Shutdown() // every line written
	want := map[string]string{"job completed": "took_ms", "job will run again": "retry_in_ms"}
	for _, l := range logLines(&logs) {
		field, ok := want[l["message"].(string)]
		if !ok {
			continue
		}
		if _, isNum := l[field].(float64); !isNum {
			t.Errorf("%q has no number %s: %v", l["message"], field, l)
		}
		delete(want, l["message"].(string))
		for _, bare := range []string{"took", "retry_in"} {
			if _, ok := l[bare]; ok {
				t.Errorf("%q has a unitless %s: %v", l["message"], bare, l)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("no log lines %v", want)
	}
}
