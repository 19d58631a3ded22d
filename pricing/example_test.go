package pricing_test

import (
	"fmt"

	"github.com/qaqueue/qaqueue/pricing"
	"github.com/qaqueue/qaqueue/program"
)

func ExampleTable_Cost() {
	table, err := pricing.Parse(`{"hosted_vllm/llama-3-8b": {"input": 0.05, "output": 0.1}}`)
	if err != nil {
		panic(err)
	}
	usage := program.Usage{
		"prompt_tokens": int64(12000), "completion_tokens": int64(800),
		"prompt_tokens_details": program.Usage{"cached_tokens": int64(10000)},
	}
	live, _ := table.Cost("openai/gpt-4o-mini-2024-07-18", usage, false)
	batch, _ := table.Cost("gpt-4o-mini", usage, true)
	own, _ := table.Cost("hosted_vllm/llama-3-8b", usage, false)
	fmt.Println(live, batch, own, table.CostOf("openai/gpt-3.5-turbo", usage, false))
	// Output: 1530 765 680 <nil>
}
