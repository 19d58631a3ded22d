package api

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/qaqueue/qaqueue/jobs"
)

// checkDecodeErr fails unless err is a client error (4xx) the responder can
// word: a decoder must never cause a 500.
func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		t.Fatalf("decoder returned a non-API error %T: %v", err, err)
	}
	if ae.status < 400 || ae.status >= 500 {
		t.Fatalf("decoder answered %d: %v", ae.status, err)
	}
	if ae.message == "" {
		t.Fatal("error without a message")
	}
}

var bodySeeds = []string{
	`{"question":"What is Redis?"}`, `{}`, `{"question":""}`, `{"question":null}`, `{"question":1}`,
	`{"question":"q","no_cache":true,"stream":false}`, `{"question":"q","x":1}`, `[{"question":"q"}]`,
	`[]`, `[1]`, `{"question":"\u00e9\ud83d\ude00"}`, `{"question":"\ud800"}`, `{`, ``, ` `, `null`,
	`{"question":"q"}{}`, `"q"`, `1e999`, `{"question":"q","question":2}`,
	`{"inputs":{"question":"q"}}`, `{"program":"qa","inputs":{"question":"q"},"options":{"stream":false,"no_cache":true}}`,
	`{"inputs":{"question":"q","n":1.0}}`, `{"inputs":[]}`, `{"inputs":{"question":"q"},"options":{"x":1}}`,
	`{"question":"q","inputs":{}}`, `{"question":"q","owner":"o"}`, `{"program":7,"inputs":{}}`, `{"inputs":{"question":"q"},"options":null}`,
}

// fuzzLimits are the limits the decoders are fuzzed with, and fuzzRules
// those with the built-in QA program alone.
var (
	fuzzLimits = jobs.Limits{MaxQuestionChars: 50, MaxInputBytes: 200}
	fuzzRules  = specRules{lim: fuzzLimits}
)

// checkSpec fails unless spec is one its Validate accepts, a question of 1
// to 50 characters.
func checkSpec(t *testing.T, spec jobs.ClientSpec) {
	t.Helper()
	if err := spec.Validate(fuzzLimits, jobs.QAProgram()); err != nil {
		t.Fatalf("accepted a spec its Validate refuses: %v", err)
	}
	if n := utf8.RuneCountInString(spec.Question()); n < 1 || n > 50 {
		t.Fatalf("accepted a question of %d characters", n)
	}
}

func FuzzJobBody(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, _, err := decodeJobRequest(body, fuzzRules, jobs.Options{})
		checkDecodeErr(t, err)
		if err != nil {
			return
		}
		checkSpec(t, spec)
		// The spec as stored is the spec's own body, in which the request
		// reads the same, whichever form it came in.
		stored, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := decodeJobRequest(stored, fuzzRules, jobs.Options{})
		if err != nil || !reflect.DeepEqual(again, spec) {
			t.Fatalf("%s decodes to %+v, %v; want %+v", stored, again, err, spec)
		}
	})
}

func FuzzPredictBody(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, _, err := decodePredictRequest(body, fuzzRules)
		checkDecodeErr(t, err)
		if err == nil {
			checkSpec(t, spec)
		}
	})
}

func FuzzBatchBody(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, _, err := decodeBatchRequest(body, fuzzRules, 5)
		checkDecodeErr(t, err)
		if err == nil && len(items) > 5 {
			t.Fatalf("accepted %d items", len(items))
		}
		for _, spec := range items {
			checkSpec(t, spec)
		}
	})
}

func FuzzLastEventID(f *testing.F) {
	for _, s := range []string{"", "0", "1-0", "1700000000000-12", "abc", "1-2-3", "-1", "1-", strings.Repeat("9", 60), " 1-1 "} {
		f.Add(s, "")
		f.Add("", s)
	}
	f.Fuzz(func(t *testing.T, header, query string) {
		id, err := parseLastEventID(header, query)
		checkDecodeErr(t, err)
		if err == nil && id != "" && !validStreamID(id) {
			t.Fatalf("accepted %q", id)
		}
	})
}

// validStreamID is an independent statement of what parseLastEventID may
// accept: digits, at most one inner dash.
func validStreamID(id string) bool {
	ms, seq, dash := strings.Cut(id, "-")
	digits := func(s string) bool {
		if s == "" {
			return false
		}
		for _, c := range s {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	return digits(ms) && (!dash || digits(seq)) && len(id) <= 41
}

func FuzzIdempotencyKey(f *testing.F) {
	for _, s := range []string{"", "k", "order-17", "tab\there", "ключ", strings.Repeat("k", 256), "\x00", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got, err := parseIdempotencyKey(key)
		checkDecodeErr(t, err)
		if err == nil && got != "" && (len(got) > maxIdempotencyKey || !utf8.ValidString(got)) {
			t.Fatalf("accepted %q", got)
		}
	})
}

func FuzzWait(f *testing.F) {
	for _, s := range []string{"", "30s", "30", "1.5", "-1", "NaN", "Inf", "-Inf", "1e308", "9999999h", "1ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := parseWait(v, 60e9)
		checkDecodeErr(t, err)
		if err == nil && (d < 0 || d > 60e9) {
			t.Fatalf("wait %q gave %v", v, d)
		}
	})
}

func TestDecodeErrorsAreClientErrors(t *testing.T) {
	t.Parallel()
	// The seeds, as a regular test (the fuzz targets run them too).
	for _, s := range bodySeeds {
		_, _, err := decodeJobRequest([]byte(s), fuzzRules, jobs.Options{})
		checkDecodeErr(t, err)
		_, _, err = decodeBatchRequest([]byte(s), fuzzRules, 5)
		checkDecodeErr(t, err)
	}
}
