package samework

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
	"github.com/qaqueue/qaqueue/program"
)

// One job through the baseline, against a real Redis and the fake LM: POST
// answers an id, the long-poll answers the completed result, and the LM got
// the QA program's own prompt, so the baseline's LM does qaqueue's work.
func TestJobEndToEnd(t *testing.T) {
	gin.SetMode(gin.TestMode)
	db := redistest.New(t)
	lm, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	rdb := redis.NewClient(db.Options())
	t.Cleanup(func() { _ = rdb.Close() })

	srv, h := NewWorker(rdb, lm.URL(), 2)
	if err := srv.Start(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	api := httptest.NewServer(NewAPI(rdb))
	t.Cleanup(api.Close)

	const question = "why is the sky blue?"
	resp, err := http.Post(api.URL+"/v1/jobs", "application/json", bytes.NewReader([]byte(`{"question":"`+question+`"}`)))
	if err != nil {
		t.Fatal(err)
	}
	var sub Answer
	if err := json.NewDecoder(resp.Body).Decode(&sub); err != nil || resp.StatusCode != http.StatusAccepted || sub.ID == "" {
		t.Fatalf("POST /v1/jobs: %d %+v %v", resp.StatusCode, sub, err)
	}
	resp.Body.Close()

	var got Answer
	for got.Status != "completed" { // each wait ends with the job or after 30 s
		resp, err := http.Get(api.URL + "/v1/jobs/" + sub.ID + "?wait=30s")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/jobs/%s: %d %v", sub.ID, resp.StatusCode, err)
		}
	}
	var res struct {
		Outputs map[string]any `json:"outputs"`
	}
	if err := json.Unmarshal(got.Result, &res); err != nil || res.Outputs["answer"] == "" || res.Outputs["answer"] == nil {
		t.Fatalf("result %s: no answer (%v)", got.Result, err)
	}

	var body struct {
		Messages []program.Message `json:"messages"`
	}
	if err := json.Unmarshal(lm.LastRequest(), &body); err != nil {
		t.Fatal(err)
	}
	pred := program.NewQA().Predictor().Predict
	want := program.ChatAdapter{}.Format(pred.Signature(), pred.Demos(), map[string]any{"question": question})
	if len(body.Messages) != len(want) {
		t.Fatalf("LM got %d messages, want the QA program's %d", len(body.Messages), len(want))
	}
	for i := range want {
		if body.Messages[i] != want[i] {
			t.Errorf("message %d: got %+v, want the QA program's %+v", i, body.Messages[i], want[i])
		}
	}
}

// A wait on a job that has not ended answers pending once the wait is over.
func TestWaitPending(t *testing.T) {
	db := redistest.New(t)
	rdb := redis.NewClient(db.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	res, err := waitResult(context.Background(), rdb, "nosuch", 1)
	if res != nil || err != nil {
		t.Fatalf("waitResult of a job never run = %s, %v; want nil, nil", res, err)
	}
}
