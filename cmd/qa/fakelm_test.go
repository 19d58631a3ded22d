package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/internal/testlog"
	"github.com/qaqueue/qaqueue/internal/testwait"
)

func TestFakeLMServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut testlog.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	done := make(chan error, 1)
	go func() { done <- runFakeLM(ctx, e, []string{"--addr", "127.0.0.1:0", "--tps", "0"}) }()

	var base string
	defer func() { // on the way out of a failed wait: what it said instead
		if base == "" {
			t.Logf("stdout %q stderr %q", out.String(), errOut.String())
		}
	}()
	testwait.Until(t, "the listening line", func() bool {
		if _, after, ok := strings.Cut(out.String(), "LM_API_BASE="); ok {
			base, _, _ = strings.Cut(after, ")")
		}
		return base != ""
	})
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"[[ ## question ## ]]\nWhat is Go?\n\nRespond with the corresponding output fields, starting with the field ` + "`[[ ## answer ## ]]`" + `, and then ending with the marker for ` + "`[[ ## completed ## ]]`" + `."}]}`
	res, err := http.Post(base+"/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	_ = json.NewDecoder(res.Body).Decode(&c)
	_ = res.Body.Close()
	if len(c.Choices) != 1 || !strings.Contains(c.Choices[0].Message.Content, "[[ ## answer ## ]]") {
		t.Errorf("answer = %+v", c)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runFakeLM = %v, want a clean stop", err)
	}
}

func TestFakeLMBadFlags(t *testing.T) {
	t.Parallel()
	var out, errOut testlog.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	if err := runFakeLM(context.Background(), e, []string{"--tps", "-1"}); err == nil {
		t.Error("negative tps accepted")
	}
	if err := runFakeLM(context.Background(), e, []string{"--nope"}); err == nil {
		t.Error("unknown flag accepted")
	}
}

func TestFakeLMBatchFlags(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut testlog.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	done := make(chan error, 1)
	go func() {
		done <- runFakeLM(ctx, e, []string{"--addr", "127.0.0.1:0", "--batch-outage", "1", "--batch-outage-status", "429",
			"--batch-outage-retry-after", "7s", "--files-max-bytes", "10"})
	}()
	var base string
	testwait.Until(t, "the listening line", func() bool {
		if _, after, ok := strings.Cut(out.String(), "LM_API_BASE="); ok {
			base, _, _ = strings.Cut(after, ")")
		}
		return base != ""
	})
	upload := func() *http.Response {
		body := "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n0123456789ABCDEF\r\n--b--\r\n"
		res, err := http.Post(base+"/files", "multipart/form-data; boundary=b", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res
	}
	if res := upload(); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "7" {
		t.Errorf("first upload: %d Retry-After %q, want the outage's 429 and 7", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if res := upload(); res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("16 bytes over -files-max-bytes 10: %d, want 413", res.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runFakeLM = %v", err)
	}
	if err := runFakeLM(context.Background(), e, []string{"--batch-fail-status", "200"}); err == nil {
		t.Error("-batch-fail-status 200 accepted")
	}
}
