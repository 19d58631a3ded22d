package worker_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/qaqueue/qaqueue/store"
	"github.com/qaqueue/qaqueue/worker"
)

// recordingLM passes calls to an LM and keeps the messages of each.
type recordingLM struct {
	program.LM
	mu   sync.Mutex
	sent [][]program.Message
}

func (r *recordingLM) Complete(ctx context.Context, req *program.Request) (*program.Completion, error) {
	r.mu.Lock()
	r.sent = append(r.sent, slices.Clone(req.Messages))
	r.mu.Unlock()
	return r.LM.Complete(ctx, req)
}

// The runner sends each stage of DSPy's two-stage program the messages DSPy
// 3.3.1's ChatAdapter renders for it (multi_stage.json's
// stage_renders_chat_adapter), with the saved state's demos and without: a
// table test over the vectors, through the runner and the fake LM.
func TestTwoStageVectorsRenderPerStage(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../program/testdata/vectors/multi_stage.json") // shared/dspy/vectors-typed's copy
	if err != nil {
		t.Fatal(err)
	}
	var vec struct {
		WithDemos struct {
			State string `json:"save_json_text"`
		} `json:"with_demos"`
		Renders []struct {
			Stage    string            `json:"stage"`
			Variant  string            `json:"variant"`
			Inputs   jobs.Inputs       `json:"inputs"`
			Messages []program.Message `json:"messages"`
		} `json:"stage_renders_chat_adapter"`
	}
	if err := json.Unmarshal(raw, &vec); err != nil {
		t.Fatal(err)
	}
	yaml, err := os.ReadFile("testdata/twostage/program.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file, err := programfile.Parse(yaml)
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, store.Config{})
	for _, variant := range []string{"no_demos", "with_demos"} {
		t.Run(variant, func(t *testing.T) {
			bundle := &programfile.Bundle{File: file, YAML: yaml}
			if variant == "with_demos" {
				bundle.State = []byte(vec.WithDemos.State)
			}
			c, err := programfile.Compile(bundle)
			if err != nil {
				t.Fatal(err)
			}
			lm := &recordingLM{LM: b.lc}
			runner := worker.NewRunner(worker.StaticPrograms{{Name: "two-stage", Version: "v"}: c}, lm)
			// The program's inputs: the answer stage's (question and context)
			// include the rewrite stage's.
			inputs := jobs.Inputs{}
			want := map[string][]program.Message{}
			for _, r := range vec.Renders {
				if r.Variant != variant {
					continue
				}
				for k, v := range r.Inputs {
					inputs[k] = v
				}
				want[r.Stage] = r.Messages
			}
			if len(want) != 2 {
				t.Fatalf("%d stage renders for %s, want 2", len(want), variant)
			}
			if _, err := runner.Run(context.Background(), inputs, worker.RunOptions{Program: "two-stage", ProgramVersion: "v",
				Options: jobs.Options{NoCache: true}}); err != nil {
				t.Fatal(err)
			}
			if len(lm.sent) != 2 {
				t.Fatalf("%d LM calls, want one per stage", len(lm.sent))
			}
			for i, stage := range []string{"rewrite.predict", "answer.predict"} {
				if diff := cmp.Diff(want[stage], lm.sent[i]); diff != "" {
					t.Errorf("stage %s messages (-DSPy +sent):\n%s", stage, diff)
				}
			}
		})
	}
}
