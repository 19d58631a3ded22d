package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/jobs"
)

// uploadTo uploads a JSONL body to path (POST /v1/batches and its query),
// expecting 202.
func (b *bundle) uploadTo(t *testing.T, path, body string, hdr http.Header) batchView {
	t.Helper()
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("Content-Type", "application/x-ndjson")
	resp, out := b.do(t, "POST", path, body, hdr)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload to %s: %d %s", path, resp.StatusCode, out)
	}
	return decode[batchView](t, out)
}

// TestBatchUploadQueryIsChecked: every query parameter of POST /v1/batches
// is one it takes, once, with a value it allows; anything else is a 422
// naming the parameter and what it allows, and stores nothing.
func TestBatchUploadQueryIsChecked(t *testing.T) {
	t.Parallel()
	b := setup(t, options{api: api.Config{NoProviderBatches: true}})
	body := jsonl(`{"question":"q"}`)
	for _, c := range []struct {
		query, field string
		says         []string
	}{
		{"?no_cach=true", "no_cach", []string{`"no_cach"`, "mode", "no_cache", "program"}},
		{"?no_cache=1", "no_cache", []string{"true", "false", `"1"`}},
		{"?no_cache=yes&mode=live", "no_cache", []string{"true", "false"}},
		{"?mode=fast", "mode", []string{"live", "provider", `"fast"`}},
		{"?mode=live&mode=provider", "mode", []string{"once"}},
		{"?mode=", "mode", []string{"live", "provider"}},
		{"?program=qa&x%20y=1", "x y", []string{"mode"}},
		// Provider mode needs the provider's batch API, refused here.
		{"?mode=provider", "mode", []string{"provider", "live"}},
	} {
		resp, out := b.do(t, "POST", "/v1/batches"+c.query, body, http.Header{"Content-Type": {"application/x-ndjson"}})
		e := decode[v1Error](t, out)
		if resp.StatusCode != http.StatusUnprocessableEntity || e.Error.Field != c.field || e.Error.Code != "validation_error" {
			t.Errorf("%s: %d %s, want 422 naming %q", c.query, resp.StatusCode, out, c.field)
			continue
		}
		for _, s := range c.says {
			if !strings.Contains(e.Error.Message, s) {
				t.Errorf("%s: message %q does not say %s", c.query, e.Error.Message, s)
			}
		}
	}
	// The parameters it takes, with good values.
	for _, q := range []string{"", "?no_cache=false", "?no_cache=true&mode=live&program=qa"} {
		v := b.uploadTo(t, "/v1/batches"+q, body, nil)
		if v.Mode != "live" || v.Provider != nil || v.Cost != nil {
			t.Errorf("%s: batch %+v, want live without provider or cost", q, v)
		}
	}
	_, out := b.do(t, "GET", "/v1/batches", nil, nil)
	if n := strings.Count(string(out), `"object":"batch"`); n != 3 {
		t.Fatalf("%d batches stored, want the 3 good uploads: %s", n, out)
	}
}

// TestV1PostQueryIsChecked: the other /v1 POST endpoints refuse a query
// parameter they do not take; the seed's endpoints ignore one, as FastAPI
// does.
func TestV1PostQueryIsChecked(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	id := b.submit(t, "Why?")
	for _, c := range []struct{ path, field string }{
		{"/v1/jobs?wiat=5", "wiat"},
		{"/v1/jobs?wait=1&wait=2", "wait"},
		{"/v1/jobs/" + id + "/cancel?force=true", "force"},
		{"/v1/batches/batch_00000000000000000000000000000000/cancel?now=1", "now"},
		{"/v1/batches/batch_00000000000000000000000000000000/retry?all=1", "all"},
	} {
		resp, out := b.do(t, "POST", c.path, map[string]any{"question": "q"}, nil)
		if e := decode[v1Error](t, out); resp.StatusCode != http.StatusUnprocessableEntity || e.Error.Field != c.field {
			t.Errorf("POST %s: %d %s, want 422 naming %q", c.path, resp.StatusCode, out, c.field)
		}
	}
	if resp, out := b.do(t, "POST", "/v1/jobs?wait=0", map[string]any{"question": "q"}, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs?wait=0: %d %s", resp.StatusCode, out)
	}
}

// TestProviderBatchShown: with the provider's batch API configured, a
// provider-mode upload is stored as one, and its batch object shows the
// mode, then the provider object and the cost once its runner wrote them;
// its events carry the provider object.
func TestProviderBatchShown(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ctx := context.Background()
	body := jsonl(`{"question":"q1"}`, `{"question":"q2"}`)
	v := b.uploadTo(t, "/v1/batches?mode=provider", body, http.Header{"Idempotency-Key": {"p1"}})
	if v.Mode != "provider" || v.Provider != nil || v.Cost != nil {
		t.Fatalf("created = %+v", v)
	}
	if got, err := b.batches.Get(ctx, v.ID); err != nil || got.Mode != jobs.BatchModeProvider {
		t.Fatalf("stored = %+v, %v", got, err)
	}
	// The mode is part of what the Idempotency-Key names: the same body as
	// a live batch is another upload.
	resp, out := b.do(t, "POST", "/v1/batches", body, http.Header{"Idempotency-Key": {"p1"}, "Content-Type": {"application/x-ndjson"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("same key and body, live: %d %s", resp.StatusCode, out)
	}
	if again := b.uploadTo(t, "/v1/batches?mode=provider", body, http.Header{"Idempotency-Key": {"p1"}}); again.ID != v.ID {
		t.Fatalf("replay made %s, want %s", again.ID, v.ID)
	}

	p := jobs.ProviderProgress{Name: "openai", Phase: jobs.ProviderValidating, Round: 1,
		Batches: []jobs.ProviderBatch{{ID: "batch_p", InputFileID: "file-1", Status: "validating", Requests: 2}},
		Counts:  jobs.ProviderCounts{Total: 2}}
	if err := b.batches.SetProvider(ctx, v.ID, p); err != nil {
		t.Fatal(err)
	}
	micros, live := int64(75), int64(150)
	cost := jobs.BatchCost{Model: "openai/gpt-4o-mini", Micros: &micros, LiveMicros: &live, ProviderCalls: 2}
	if err := b.batches.SetCost(ctx, v.ID, cost); err != nil {
		t.Fatal(err)
	}
	resp, out = b.do(t, "GET", "/v1/batches/"+v.ID, nil, nil)
	got := decode[batchView](t, out)
	if resp.StatusCode != http.StatusOK || got.Provider == nil || got.Provider.Phase != jobs.ProviderValidating ||
		got.Provider.Batches[0].ID != "batch_p" || got.Cost == nil || *got.Cost.Micros != 75 || *got.Cost.LiveMicros != 150 {
		t.Fatalf("batch = %d %s", resp.StatusCode, out)
	}
	// The events: the last progress event carries the provider object.
	sse := b.openSSE(t, "GET", "/v1/batches/"+v.ID+"/events", nil, nil)
	for {
		ev, ok := sse.next(t)
		if !ok {
			t.Fatal("the events ended without the provider object")
		}
		if ev.Data == "" {
			continue // retry: and the like
		}
		var d jobs.BatchProgress
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatalf("event %s: %v", ev.Data, err)
		}
		if d.Provider != nil {
			if ev.Event != "progress" || d.Provider.Phase != jobs.ProviderValidating || d.Status != jobs.BatchInProgress {
				t.Fatalf("event %s = %s", ev.Event, ev.Data)
			}
			break
		}
	}
}
