package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Client speaks the qaqueue HTTP API, as a benchmark or a test needs it.
type Client struct {
	Base string
	HTTP *http.Client
	// Token, when set, is sent as "Authorization: Bearer TOKEN" (an admin
	// key, for the registry's routes).
	Token string
}

// NewClient is a client for base with a transport that keeps up to conns
// connections to it.
func NewClient(base string, conns int) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	return &Client{Base: base, HTTP: &http.Client{Transport: tr}}
}

// Job is a job as GET /v1/jobs/{id} shows it (what is read of it here).
type Job struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	Result   *struct {
		Outputs    map[string]any `json:"outputs"`
		Provenance Provenance     `json:"provenance"`
		Stages     []StageUsage   `json:"stages"`
	} `json:"result"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Status  int    `json:"status"`
	} `json:"error"`
}

// Provenance is what a result says of how it was produced (what is read of
// it here).
type Provenance struct {
	Program        string `json:"program"`
	ProgramVersion string `json:"program_version"`
	LMCalls        int    `json:"lm_calls"`
	CacheHit       bool   `json:"cache_hit"`
}

// StageUsage is what a result says of one stage of a multi-stage program.
type StageUsage struct {
	Stage    string `json:"stage"`
	LMCalls  int    `json:"lm_calls"`
	CacheHit bool   `json:"cache_hit"`
}

// Terminal reports whether the job has ended.
func (j *Job) Terminal() bool {
	switch j.Status {
	case "completed", "failed", "cancelled", "expired":
		return true
	}
	return false
}

// Answer is the completed job's answer field.
func (j *Job) Answer() string {
	if j.Result == nil {
		return ""
	}
	s, _ := j.Result.Outputs["answer"].(string)
	return s
}

// StatusError is an HTTP answer other than the one expected.
type StatusError struct {
	Status     int
	RetryAfter string
	Body       string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %.200s", e.Status, e.Body) }

// Do sends a request with a JSON body (nil for none) and decodes a JSON
// answer with status want into out (nil to discard). Another status is a
// *StatusError.
func (c *Client) Do(ctx context.Context, method, path string, body any, want int, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.authorize(req)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return &StatusError{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Body: string(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *Client) authorize(req *http.Request) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
}

// Submit is POST /v1/jobs; it returns the job id.
func (c *Client) Submit(ctx context.Context, question string, stream bool) (string, error) {
	var out struct{ ID string }
	err := c.Do(ctx, http.MethodPost, "/v1/jobs", map[string]any{"question": question, "stream": stream}, http.StatusAccepted, &out)
	return out.ID, err
}

// SubmitProgram is POST /v1/jobs {"program", "inputs"}: a job of program
// ("name[@alias]"); it returns the job id.
func (c *Client) SubmitProgram(ctx context.Context, program string, inputs map[string]any) (string, error) {
	var out struct{ ID string }
	err := c.Do(ctx, http.MethodPost, "/v1/jobs", map[string]any{"program": program, "inputs": inputs}, http.StatusAccepted, &out)
	return out.ID, err
}

// Get is GET /v1/jobs/{id}, long-polling up to wait (0: no wait).
func (c *Client) Get(ctx context.Context, id string, wait time.Duration) (*Job, error) {
	path := "/v1/jobs/" + id
	if wait > 0 {
		path += fmt.Sprintf("?wait=%ds", int(wait.Seconds()))
	}
	var j Job
	if err := c.Do(ctx, http.MethodGet, path, nil, http.StatusOK, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// WaitEnd long-polls job id until it ends or ctx is done.
func (c *Client) WaitEnd(ctx context.Context, id string) (*Job, error) {
	for {
		j, err := c.Get(ctx, id, 20*time.Second)
		if err != nil {
			return nil, err
		}
		if j.Terminal() {
			return j, nil
		}
		if err := ctx.Err(); err != nil {
			return j, err
		}
	}
}

// Events follows GET /v1/jobs/{id}/events, handing each frame to fn until fn
// returns false or the stream ends.
func (c *Client) Events(ctx context.Context, id string, fn func(Frame) bool) error {
	return c.Stream(ctx, http.MethodGet, "/v1/jobs/"+id+"/events", nil, fn)
}

// Stream sends a request and reads its answer as SSE.
func (c *Client) Stream(ctx context.Context, method, path string, body any, fn func(Frame) bool) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "text/event-stream")
	c.authorize(req)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &StatusError{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Body: string(b)}
	}
	return ReadSSE(resp.Body, fn)
}

// TokenData is the data of a token event.
type TokenData struct {
	Attempt int    `json:"attempt"`
	Field   string `json:"field"`
	Content string `json:"content"`
}
