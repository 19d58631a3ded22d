package jobs_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/qaqueue/qaqueue/jobs"
)

// parseEventSlow is what ParseEvent did before its fast path: decode with
// encoding/json, then require an id and a type.
func parseEventSlow(payload string) (jobs.Event, error) {
	var e jobs.Event
	if err := json.Unmarshal([]byte(payload), &e); err != nil {
		return e, err
	}
	if e.ID == "" || e.Type == "" {
		return e, errors.New("missing id or type")
	}
	return e, nil
}

// envelopes are messages as the record script publishes them (every golden
// event's data in the envelope) and shapes its fast path must hand to
// encoding/json.
func envelopes(t testing.TB) []string {
	out := []string{
		`{"id":"1-0","type":"started","data":{"attempt":1}}`,
		`{"id":"1-0","type":"started","data":null}`,
		`{"id":"1-0","type":"token","data":"a \"quoted\" }"}`,
		`{"id":"1-0","type":"started","data":{"attempt":1},"extra":2}`,
		`{"id":"1-0","type":"started","data":{"attempt":1}} `,
		`{"id":"1-0","type":"started","data":{"attempt":1},"id":"2-0"}`,
		`{"id":"1-0","type":"started","data":{"attempt":1}`,
		`{"id":"1-0","type":"started","data":}`,
		`{"id":"1-0","type":"started","data":{"attempt":}}`,
		`{"id":"","type":"started","data":1}`,
		`{"id":"1-0","type":"","data":1}`,
		`{"id":"1\u002d0","type":"st\"arted","data":1}`,
		`{"id":"1-0","type":"caf` + "\xc3\xa9" + `","data":1}`,
		`{"id":"1-0","type":"x","data":"` + "\xff" + `"}`,
		`{"type":"started","id":"1-0","data":1}`,
		`{ "id":"1-0","type":"started","data":1}`,
		`{"id":"1-0","type":"started"}`,
		`[]`, ``, `null`,
		// A completed event's message, with the record's end (Event.Ended).
		`{"id":"1-0","type":"completed","data":{"result":null},"ended":{"attempts":2,"started_at":1700000000000,"finished_at":1700000000123}}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":0,"started_at":0,"finished_at":0}}`,
		`{"id":"1-0","type":"completed","data":"x,\"ended\":{\"attempts\":1,\"started_at\":2,\"finished_at\":3}}`,
		`{"id":"1-0","type":"completed","data":"s,"ended":{"attempts":1,"started_at":2,"finished_at":3}}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":1,"started_at":2,"finished_at":3},"ended":null}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":-1,"started_at":-2,"finished_at":-0}}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":01,"started_at":2,"finished_at":3}}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":1.5,"started_at":2,"finished_at":3}}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":1e2,"started_at":2,"finished_at":3}}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":,"started_at":2,"finished_at":3}}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":99999999999999999999,"started_at":2,"finished_at":3}}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":1,"started_at":9223372036854775808,"finished_at":3}}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":1,"started_at":9223372036854775807,"finished_at":3}}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":1,"started_at":2,"finished_at":3}`,
		`{"id":"1-0","type":"completed","data":1,"ended":{"attempts":1,"started_at":2}}`,
		`{"id":"1-0","type":"completed","data":1,"ended":null}`,
	}
	files, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("golden events: %v (%d files)", err, len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, `{"id":"1700000000000-0","type":"x","data":`+string(b)+`}`)
	}
	return out
}

// TestParseEventAsEncodingJSON: ParseEvent reads every message as
// encoding/json does (same event, same failures).
func TestParseEventAsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, p := range envelopes(t) {
		checkParseEvent(t, p)
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, p := range envelopes(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) { checkParseEvent(t, p) })
}

func checkParseEvent(t *testing.T, p string) {
	t.Helper()
	want, wantErr := parseEventSlow(p)
	got, err := jobs.ParseEvent(p)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("ParseEvent(%q) error = %v, encoding/json: %v", p, err, wantErr)
	}
	if err == nil {
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("ParseEvent(%q) (-encoding/json +got):\n%s", p, diff)
		}
	}
}

// TestParseEventAllocs: a message as the record script publishes it is read
// without encoding/json's reflection (12 allocations for the envelope before,
// 1 after; 16 for the completed event's message with the record's end, 2 after).
func TestParseEventAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	b, err := os.ReadFile(filepath.Join("testdata", "events", "completed.json"))
	if err != nil {
		t.Fatal(err)
	}
	envelope := `{"id":"1700000000000-0","type":"completed","data":` + string(b) + `}`
	ended := `{"id":"1700000000000-0","type":"completed","data":` + string(b) +
		`,"ended":{"attempts":1,"started_at":1700000000000,"finished_at":1700000000123}}`
	for _, c := range []struct {
		name, payload string
		max           float64
	}{{"envelope", envelope, 1}, {"ended_envelope", ended, 2}} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := jobs.ParseEvent(c.payload); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > c.max {
			t.Errorf("ParseEvent(%s): %.0f allocations, want at most %.0f", c.name, allocs, c.max)
		}
	}
}
