package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzBatchUpload holds the upload decoder to its contract on any input: no
// panic; either items or problems (at most maxBatchProblems) or the item
// limit; every item valid (question 1..max characters, unique non-empty
// custom_id); and the same items from JSONL as from the equivalent array.
func FuzzBatchUpload(f *testing.F) {
	for _, s := range []string{
		`{"question":"a"}` + "\n" + `{"custom_id":"x","question":"b"}`,
		`[{"question":"a"},{"custom_id":"x","question":"b"}]`,
		`{"question":""}`, `{"question":5}`, `[1,2]`, `[`, `{"custom_id":"1","question":"a"}` + "\n" + `{"question":"b"}`,
		"\n\n{\"question\":\"\\u00e9\"}\r\n", `{"question":"a","extra":true}`, `[{"question":"a"}] x`, "",
	} {
		f.Add([]byte(s))
	}
	lim := batchLimits{MaxItems: 50, MaxQuestionChars: 20}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, problems, err := decodeBatchUpload(bytes.NewReader(body), lim)
		if err != nil {
			if _, ok := err.(errTooManyItems); !ok {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if (len(items) == 0) == (len(problems) == 0) {
			t.Fatalf("items %d, problems %d: exactly one must be set", len(items), len(problems))
		}
		if len(problems) > maxBatchProblems {
			t.Fatalf("%d problems", len(problems))
		}
		seen := map[string]bool{}
		for _, it := range items {
			n := utf8.RuneCountInString(it.Question)
			if n < 1 || n > lim.MaxQuestionChars || it.CustomID == "" || seen[it.CustomID] {
				t.Fatalf("invalid item accepted: %+v", it)
			}
			seen[it.CustomID] = true
		}
		if len(items) == 0 || bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
			return
		}
		// The same items as a JSON array decode alike (custom_ids given,
		// since the defaults differ: line vs item number).
		var arr []string
		for _, it := range items {
			b, _ := json.Marshal(it)
			arr = append(arr, string(b))
		}
		again, probs, err := decodeBatchUpload(strings.NewReader("["+strings.Join(arr, ",")+"]"), lim)
		if err != nil || len(probs) > 0 || len(again) != len(items) {
			t.Fatalf("array form: %d items, %v, %v", len(again), probs, err)
		}
		for i := range items {
			if again[i] != items[i] {
				t.Fatalf("item %d: %+v vs %+v", i, again[i], items[i])
			}
		}
	})
}
