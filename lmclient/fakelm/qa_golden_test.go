package fakelm

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/qaqueue/qaqueue/program"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/qa_answers.json from this run")

// qaSchemaFormat is the response_format LiteLLM sends for the QA program's
// structured outputs (shared/dspy/vectors-typed/wire, qa_worked_example).
const qaSchemaFormat = `{"type":"json_schema","json_schema":{"schema":{"additionalProperties":false,"properties":{"reasoning":{"title":"Reasoning","type":"string"},"answer":{"title":"Answer","type":"string"},"key_concepts":{"title":"Key Concepts","type":"string"},"question_type":{"title":"Question Type","type":"string"}},"required":["reasoning","answer","key_concepts","question_type"],"title":"DSPyProgramOutputs","type":"object"},"name":"DSPyProgramOutputs","strict":true}}`

// TestQAAnswersUnchanged pins, byte for byte, what the fake answers the QA
// program in the chat form, JSON mode and structured outputs: tests across
// the tree (the API's SSE goldens, benchmarks) depend on these texts.
// testdata/qa_answers.json was written by the fake as it was before it
// answered typed fields.
func TestQAAnswersUnchanged(t *testing.T) {
	t.Parallel()
	s := setup(t, Config{})
	cot, err := program.NewChainOfThought(program.QASignature())
	if err != nil {
		t.Fatal(err)
	}
	sig := cot.Signature()
	got := map[string]string{}
	for _, q := range []string{"What is the capital of France?", "Why is the sky blue?", "Should I learn Go or Rust?"} {
		inputs := map[string]any{"question": q}
		got["chat/"+q] = qaAnswer(t, s, program.ChatAdapter{}.Format(sig, nil, inputs), "")
		jsonMsgs := program.JSONAdapter{}.Format(sig, nil, inputs)
		got["json_object/"+q] = qaAnswer(t, s, jsonMsgs, `{"type":"json_object"}`)
		got["json_schema/"+q] = qaAnswer(t, s, jsonMsgs, qaSchemaFormat)
	}
	path := filepath.Join("testdata", "qa_answers.json")
	if *updateGolden {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]string
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("QA answers changed (-want +got):\n%s", diff)
	}
}

// qaAnswer posts messages (and a raw response_format, when not "") and
// returns the answer's content.
func qaAnswer(t *testing.T, s *Server, msgs []program.Message, responseFormat string) string {
	t.Helper()
	body := map[string]any{"model": "gpt-4o-mini", "messages": msgs}
	if responseFormat != "" {
		body["response_format"] = json.RawMessage(responseFormat)
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return completionOf(t, s, b)
}

// completionOf posts a raw request body and returns the answer's content.
func completionOf(t *testing.T, s *Server, body []byte) string {
	t.Helper()
	res, err := http.Post(s.URL()+"/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, data)
	}
	var out completion
	if err := json.Unmarshal(data, &out); err != nil || len(out.Choices) != 1 {
		t.Fatalf("answer %s: %v", data, err)
	}
	return out.Choices[0].Message.Content
}
