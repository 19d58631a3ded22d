package lmclient

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzAPIErrorBody(f *testing.F) {
	for _, s := range []string{`{"error":{"message":"m","type":"t","code":"c"}}`, `{"error":"x"}`, `{"code":5}`, `<html>`, ``} {
		f.Add(s, "2", "1500")
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, body, retryAfter, retryAfterMs string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("retry-after-ms", retryAfterMs)
		e := apiErrorFromResponse("m", 503, h, []byte(body), now)
		if e.Status != 503 || e.Message == "" || e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Fatalf("%+v", e)
		}
		_ = e.Error()
	})
}

func FuzzParseUsage(f *testing.F) {
	f.Add(`{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":0},"cost":0.5}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseUsage(raw)
		if err != nil {
			return
		}
		_ = MergeUsage(MergeUsage(nil, u), u)
	})
}

func FuzzCanonicalString(f *testing.F) {
	for _, s := range []string{"hi", "<&>\u2028", "\x00\x1f\"\\", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := CanonicalJSON(s)
		if !utf8.ValidString(s) {
			if err == nil {
				t.Fatal("invalid UTF-8 accepted")
			}
			return
		}
		var back string
		if err != nil || json.Unmarshal(b, &back) != nil || back != s {
			t.Fatalf("%q → %s (%v) → %q", s, b, err, back)
		}
	})
}
