package api

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/qaqueue/qaqueue/jobs"
)

// decodeAll decodes an upload, keeping the items it stores.
func decodeAll(r io.Reader, lim batchLimits) ([]jobs.BatchItem, []batchProblem, error) {
	var items []jobs.BatchItem
	problems, err := decodeBatchUpload(r, lim, func(it jobs.BatchItem) error {
		items = append(items, it)
		return nil
	})
	return items, problems, err
}

// FuzzBatchUpload holds the upload decoder to its contract on any input: no
// panic; either items, or problems (at most maxBatchProblems), or the item
// limit, or an empty upload; every item valid (question 1..max characters,
// not blank; unique non-empty custom_id); and the same items from JSONL as
// from the equivalent array.
func FuzzBatchUpload(f *testing.F) {
	for _, s := range []string{
		`{"question":"a"}` + "\n" + `{"custom_id":"x","question":"b"}`,
		`[{"question":"a"},{"custom_id":"x","question":"b"}]`,
		`{"question":""}`, `{"question":5}`, `[1,2]`, `[`, `{"custom_id":"1","question":"a"}` + "\n" + `{"question":"b"}`,
		"\n\n{\"question\":\"\\u00e9\"}\r\n", `{"question":"a","extra":true}`, `[{"question":"a"}] x`, "",
		`{"inputs":{"question":"a"}}` + "\n" + `{"custom_id":"x","inputs":{"question":"b"}}`, `{"inputs":{"question":"a","n":1.0}}`,
		`{"question":"a","inputs":{"question":"a"}}`, `{"inputs":null}`, `{"inputs":{"question":"a"},"owner":"o"}`,
	} {
		f.Add([]byte(s))
	}
	lim := batchLimits{MaxItems: 50, MaxQuestionChars: 20, MaxInputBytes: 64}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, problems, err := decodeAll(bytes.NewReader(body), lim)
		if err != nil {
			switch err.(type) {
			case errTooManyItems, errEmptyUpload:
			default:
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(problems) > maxBatchProblems {
			t.Fatalf("%d problems", len(problems))
		}
		if len(problems) > 0 {
			return // the items stored before the first problem are dropped
		}
		if len(items) == 0 {
			t.Fatal("neither items nor problems nor an error")
		}
		seen := map[string]bool{}
		for _, it := range items {
			q, ok := it.Inputs["question"].(string)
			n := utf8.RuneCountInString(q)
			if !ok || len(it.Inputs) != 1 || strings.TrimSpace(q) == "" || n > lim.MaxQuestionChars || it.CustomID == "" || seen[it.CustomID] {
				t.Fatalf("invalid item accepted: %+v", it)
			}
			seen[it.CustomID] = true
		}
		if len(items) == 0 || bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
			return
		}
		// The same items as a JSON array of items as stored ({custom_id,
		// inputs}) decode alike (custom_ids given, since the defaults
		// differ: line vs item number).
		var arr []string
		for _, it := range items {
			b, _ := json.Marshal(it)
			arr = append(arr, string(b))
		}
		again, probs, err := decodeAll(strings.NewReader("["+strings.Join(arr, ",")+"]"), lim)
		if err != nil || len(probs) > 0 || len(again) != len(items) {
			t.Fatalf("array form: %d items, %v, %v", len(again), probs, err)
		}
		for i := range items {
			if !reflect.DeepEqual(again[i], items[i]) {
				t.Fatalf("item %d: %+v vs %+v", i, again[i], items[i])
			}
		}
	})
}
