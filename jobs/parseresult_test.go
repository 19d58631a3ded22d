package jobs_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/jobs"
)

// completedResult is a QA job's completed event data, as the record script
// sends it.
const completedResult = `{"result":{"outputs":{"reasoning":"France's capital is Paris.","answer":"Paris"},"provenance":{"model":"openai/gpt-4o-mini","program_state_sha256":"","cache_hit":false,"attempts":1,"lm_calls":1},"usage":{"openai/gpt-4o-mini":{"prompt_tokens":10,"completion_tokens":5}},"latency_seconds":0.0123}}`

// TestParseCompletedAllocs: a completed event's result, which ends every
// wait, is read in one pass instead of through encoding/json's reflection
// (20 allocations before, 11 after).
func TestParseCompletedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	b := []byte(completedResult)
	allocs := testing.AllocsPerRun(100, func() {
		if d, err := jobs.ParseCompleted(b); err != nil || d.Result.Answer("answer") != "Paris" {
			t.Fatalf("ParseCompleted: %v, %+v", err, d)
		}
	})
	t.Logf("%.0f allocations", allocs)
	if allocs > 11 {
		t.Errorf("ParseCompleted: %.0f allocations, want at most 11", allocs)
	}
}

// resultObjects are results and near misses the one pass must read as
// json.Unmarshal does, or leave to it.
var resultObjects = []string{
	`{"outputs":{"reasoning":"r","answer":"Paris","n":1.0,"l":[1,{"a":null}]},"provenance":{"model":"m","program_state_sha256":"abc","cache_hit":true,"attempts":2,"lm_calls":3,"program":"claims","program_version":"v"},"usage":{},"latency_seconds":1e-3}`,
	` { "outputs" : { } , "usage" : { "m" : { "prompt_tokens" : 1 } } , "latency_seconds" : -0 } `,
	`{"outputs":{"a":"x"},"outputs":{"b":"y"}}`, `{"provenance":{"model":"a"},"provenance":{"attempts":1}}`,
	`{"usage":{"a":1},"usage":[]}`, `{"usage":"x"}`, `{"usage":null}`, `{"outputs":null}`, `{"outputs":[]}`,
	`{"provenance":null}`, `{"provenance":{"model":null}}`, `{"provenance":{"attempts":1.0}}`, `{"provenance":{"attempts":1e2}}`,
	`{"provenance":{"attempts":99999999999999999999}}`, `{"provenance":{"attempts":"1"}}`, `{"provenance":{"cache_hit":1}}`,
	`{"provenance":{"Model":"m"}}`, `{"provenance":{"other":1}}`, `{"latency_seconds":1e999}`, `{"latency_seconds":"1"}`,
	`{"stages":[{"stage":"s","usage":{},"lm_calls":1,"cache_hit":false}]}`, `{"Outputs":{}}`, `{"extra":1}`,
	`{"provenance":{"model":"caf\u00e9\ud800"}}`, "{\"provenance\":{\"model\":\"\xff\"}}",
	`null`, `{}`, `[]`, `"r"`, `1`, ``, `{"usage":}`, `{"usage":{}} x`,
}

// TestParseResultReadsAsUnmarshal: ParseResult and ParseCompleted read
// every result as json.Unmarshal does (same result, same failures).
func TestParseResultReadsAsUnmarshal(t *testing.T) {
	t.Parallel()
	for _, s := range resultObjects {
		checkParseResult(t, s)
	}
}

func FuzzParseResult(f *testing.F) {
	for _, s := range resultObjects {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkParseResult(t, s) })
}

func checkParseResult(t *testing.T, s string) {
	t.Helper()
	var want *jobs.Result
	wantErr := json.Unmarshal([]byte(s), &want)
	got, err := jobs.ParseResult([]byte(s))
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("ParseResult(%q) error = %v, json.Unmarshal: %v", s, err, wantErr)
	}
	if err == nil {
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("ParseResult(%q) (-json.Unmarshal +got):\n%s", s, d)
		}
	}
	for _, c := range []string{`{"result":` + s + `}`, `{"result":` + s + `,"result":{"latency_seconds":2}}`} {
		var want jobs.CompletedData
		wantErr := json.Unmarshal([]byte(c), &want)
		got, err := jobs.ParseCompleted([]byte(c))
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("ParseCompleted(%q) error = %v, json.Unmarshal: %v", c, err, wantErr)
		}
		if err == nil {
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("ParseCompleted(%q) (-json.Unmarshal +got):\n%s", c, d)
			}
		}
	}
}
