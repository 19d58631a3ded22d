package jobs_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/qaqueue/qaqueue/jobs"
)

// TestParseSpecAllocs: a stored spec, read at every job's load, is read in
// one pass, not through a json.Decoder made for each (21 allocations for
// this one before, 8 after: its strings, the map and the boxed value).
func TestParseSpecAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bounds are checked without the race detector")
	}
	b := []byte(`{"program":"qa","inputs":{"question":"What is the capital of France?"},"owner":"alice","queue":"interactive"}`)
	allocs := testing.AllocsPerRun(100, func() {
		if s, err := jobs.ParseSpec(b); err != nil || s.Question() == "" {
			t.Fatalf("ParseSpec: %v, %+v", err, s)
		}
	})
	t.Logf("%.0f allocations", allocs)
	if allocs > 8 {
		t.Errorf("ParseSpec: %.0f allocations, want at most 8", allocs)
	}
}

// specObjects are stored specs and near misses the one pass must read as
// the decoder does, or leave to it.
var specObjects = []string{
	`{"program":"qa","inputs":{"question":"What is the capital of France?"},"owner":"alice","queue":"interactive"}`,
	`{"program":"claims","inputs":{"big":123456789012345678901234567890,"n":1.0,"ok":true,"no":false,"x":null,"l":[1,"a",{"b":2.50}],"o":{"k":-0}},"options":{"stream":true,"no_cache":false},"owner":"alice","queue":"batch","program_version":"` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `"}`,
	`{"program":"qa","inputs":{},"options":{}}`,
	`{"program":"qa","inputs":{"question":"q"},"owner":"alice","queue":"interactive","trace":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`,
	`{"trace":"a","trace":"b"}`, `{"trace":null}`, `{"trace":1}`,
	` { "program" : "qa" , "inputs" : { "q\u00e9" : "a\nb\u2028" } } `,
	`{"program":"q\ud800a","inputs":{"question":"\u00e9"}}`, "{\"program\":\"qa\",\"inputs\":{\"question\":\"\xff\"}}",
	`{"Program":"qa"}`, `{"progr\u0061m":"qa"}`, `{"program":"a","program":"b"}`,
	`{"inputs":{"a":1},"inputs":{"b":2}}`, `{"inputs":{"a":1,"a":2}}`, `{"inputs":null}`, `{"program":null}`,
	`{"program":1}`, `{"inputs":[]}`, `{"options":{"stream":null}}`, `{"options":{"stream":1}}`,
	`{"options":{"other":true}}`, `{"batch":{"id":"b","index":1,"custom_id":"c"}}`, `{"trace":"x"}`,
	`{"program":"qa"} `, `{"program":"qa"} {}`, `{"program":"qa"`, `[]`, `null`, `"qa"`, ``, `{"a":}`,
}

// TestParseSpecReadsAsTheDecoder: ParseSpec reads every spec as the
// decoder it falls back to does (same spec, same failures).
func TestParseSpecReadsAsTheDecoder(t *testing.T) {
	t.Parallel()
	for _, s := range specObjects {
		checkParseSpec(t, s)
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range specObjects {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkParseSpec(t, s) })
}

func checkParseSpec(t *testing.T, s string) {
	t.Helper()
	want, wantErr := jobs.DecodeSpec([]byte(s))
	got, err := jobs.ParseSpec([]byte(s))
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("ParseSpec(%q) error = %v, decoder: %v", s, err, wantErr)
	}
	if err == nil {
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("ParseSpec(%q) (-decoder +got):\n%s", s, d)
		}
	}
}
