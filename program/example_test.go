package program_test

import (
	"context"
	"fmt"

	"github.com/qaqueue/qaqueue/program"
)

// echoLM answers every call with the same completion.
type echoLM struct{ text string }

func (l echoLM) Model() string { return "openai/gpt-4o-mini" }

func (l echoLM) Complete(_ context.Context, req *program.Request) (*program.Completion, error) {
	if req.OnDelta != nil {
		req.OnDelta(l.text)
	}
	return &program.Completion{Text: l.text, Usage: program.Usage{"prompt_tokens": int64(120), "completion_tokens": int64(30), "total_tokens": int64(150)}}, nil
}

func (l echoLM) Accept(context.Context, *program.Request, *program.Completion) error { return nil }

func ExampleProgram_Run() {
	qa := program.NewQA()
	lm := echoLM{text: "[[ ## reasoning ## ]]\nLight scatters.\n\n[[ ## answer ## ]]\nRayleigh scattering.\n\n" +
		"[[ ## key_concepts ## ]]\nscattering\n\n[[ ## question_type ## ]]\nfactual\n\n[[ ## completed ## ]]"}
	res, err := qa.Run(context.Background(), lm, map[string]any{"question": "Why is the sky blue?"}, &program.RunOptions{
		StreamFields: []string{"answer"},
		OnChunk:      func(field, chunk string) { fmt.Printf("chunk %s: %q\n", field, chunk) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	answer, _ := res.Outputs.Get("answer")
	fmt.Println(answer)
	fmt.Println(res.Usage["openai/gpt-4o-mini"]["total_tokens"], res.Calls, res.CacheHit)
	// Output:
	// chunk answer: "Rayleigh scattering."
	// Rayleigh scattering.
	// 150 1 false
}

func ExampleChatAdapter_Format() {
	sig, err := program.ParseSignature("question -> answer: int", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	msgs := program.ChatAdapter{}.Format(sig, nil, map[string]any{"question": "2+2?"})
	fmt.Println(msgs[1].Content)
	// Output:
	// [[ ## question ## ]]
	// 2+2?
	//
	// Respond with the corresponding output fields, starting with the field `[[ ## answer ## ]]` (must be formatted as a valid Python int), and then ending with the marker for `[[ ## completed ## ]]`.
}
