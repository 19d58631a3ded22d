package lmclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
)

// The worker builds one Client per process and hands it to the program; a
// failed call tells the queue whether, and when, to retry.
func Example() {
	srv, err := fakelm.New(fakelm.Config{})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	c, err := lmclient.New(lmclient.Config{Model: "openai/gpt-4o-mini", APIBase: srv.URL(), MemoryEnabled: true}, lmclient.Deps{})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	ctx := context.Background()
	req := &program.Request{Messages: []program.Message{{Role: "user",
		Content: "[[ ## question ## ]]\nWhat is Go?\n\nRespond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."}}}
	var streamed strings.Builder
	req.OnDelta = func(d string) { streamed.WriteString(d) }
	comp, err := c.Complete(ctx, req)
	if err != nil {
		panic(err)
	}
	_ = c.Accept(ctx, req, comp) // the program parsed it: cache it
	fmt.Println(comp.FinishReason, streamed.String() == comp.Text, comp.Usage["total_tokens"].(int64) > 0)

	again, _ := c.Complete(ctx, req)
	fmt.Println(again.CacheHit, len(again.Usage))

	srv.FailNext(1, fakelm.Status429(2e9))
	req.NoCache = true
	_, err = c.Complete(ctx, req)
	var ae *lmclient.APIError
	if errors.As(err, &ae) {
		d, _ := lmclient.RetryAfter(err)
		fmt.Println(ae.Status, ae.Retryable(), d)
	}
	// Output:
	// stop true true
	// true 0
	// 429 true 2s
}
