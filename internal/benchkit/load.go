package benchkit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// LoadConfig shapes a mixed load run.
type LoadConfig struct {
	// Clients run at once; client i repeats one kind of session (i mod 4):
	// submit then long-poll, submit then follow the SSE events, submit then
	// poll without waiting every PollEvery, or a synchronous /predict.
	Clients int
	// Duration is how long new sessions start; those running then finish.
	Duration time.Duration
	// PollEvery paces the plain pollers. Default 100ms.
	PollEvery time.Duration
	// Tag makes the questions unique to this run (the LM cache must miss).
	Tag string
}

// LoadResult counts what a load run saw.
type LoadResult struct {
	Sessions        int64            `json:"sessions"`
	Requests        int64            `json:"requests"`
	ByStatus        map[int]int64    `json:"by_status"`
	Status5xx       int64            `json:"status_5xx"`
	TransportErrors int64            `json:"transport_errors"`
	Accepted        int              `json:"accepted"`
	Completed       int              `json:"completed"`
	NotCompleted    map[string]int   `json:"not_completed"` // final status → count ("missing" when gone)
	Lost            int              `json:"lost"`
	Submit          Summary          `json:"submit_latency"`
	Samples         []string         `json:"error_samples,omitempty"`
	ByKind          map[string]int64 `json:"sessions_by_kind"`
	Elapsed         time.Duration    `json:"elapsed_ns"`
}

type loadRun struct {
	c   *Client
	cfg LoadConfig

	requests, errs atomic.Int64
	mu             sync.Mutex
	status         map[int]int64
	byKind         map[string]int64
	accepted       []string
	submitLat      []time.Duration
	samples        []string
}

func (r *loadRun) note(status int, err error) {
	r.requests.Add(1)
	var se *StatusError
	switch {
	case err == nil:
	case errors.As(err, &se):
		status = se.Status
	default:
		if errors.Is(err, context.Canceled) {
			return
		}
		r.errs.Add(1)
		status = 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if status != 0 {
		r.status[status]++
	}
	if err != nil && len(r.samples) < 10 {
		r.samples = append(r.samples, err.Error())
	}
}

// RunLoad runs cfg.Clients concurrent sessions against c for cfg.Duration,
// then checks that every accepted job ended completed. ctx bounds it all.
func RunLoad(ctx context.Context, c *Client, cfg LoadConfig) (LoadResult, error) {
	if cfg.PollEvery == 0 {
		cfg.PollEvery = 100 * time.Millisecond
	}
	r := &loadRun{c: c, cfg: cfg, status: map[int]int64{}, byKind: map[string]int64{}}
	start := time.Now()
	stopAt := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	var sessions atomic.Int64
	for i := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(stopAt) && ctx.Err() == nil; n++ {
				sessions.Add(1)
				r.session(ctx, i, n)
			}
		}()
	}
	wg.Wait()
	res := LoadResult{
		Sessions: sessions.Load(), Requests: r.requests.Load(), ByStatus: r.status,
		TransportErrors: r.errs.Load(), Accepted: len(r.accepted), NotCompleted: map[string]int{},
		Submit: Summarize(r.submitLat), Samples: r.samples, ByKind: r.byKind, Elapsed: time.Since(start),
	}
	for s, n := range r.status {
		if s >= 500 {
			res.Status5xx += n
		}
	}
	// Every accepted job must end, completed.
	ids := make(chan string)
	var mu sync.Mutex
	var cw sync.WaitGroup
	for range min(64, max(1, len(r.accepted))) {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for id := range ids {
				j, err := c.WaitEnd(ctx, id)
				mu.Lock()
				switch {
				case err != nil:
					var se *StatusError
					if errors.As(err, &se) && se.Status == http.StatusNotFound {
						res.NotCompleted["missing"]++
					} else {
						res.NotCompleted["unknown: "+err.Error()]++
					}
					res.Lost++
				case j.Status == "completed":
					res.Completed++
				default:
					res.NotCompleted[j.Status]++
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range r.accepted {
		ids <- id
	}
	close(ids)
	cw.Wait()
	return res, ctx.Err()
}

var loadKinds = [...]string{"longpoll", "sse", "poll", "predict"}

func (r *loadRun) session(ctx context.Context, client, n int) {
	kind := loadKinds[client%len(loadKinds)]
	r.mu.Lock()
	r.byKind[kind]++
	r.mu.Unlock()
	q := fmt.Sprintf("load %s %d-%d: why is the sky blue?", r.cfg.Tag, client, n)
	if kind == "predict" {
		err := r.c.Do(ctx, http.MethodPost, "/predict", map[string]any{"question": q}, http.StatusOK, nil)
		r.note(http.StatusOK, err)
		return
	}
	t0 := time.Now()
	id, err := r.c.Submit(ctx, q, kind == "sse")
	r.note(http.StatusAccepted, err)
	if err != nil {
		if ctx.Err() == nil {
			_ = sleepCtx(ctx, r.cfg.PollEvery) // don't hammer a refusing API
		}
		return
	}
	r.mu.Lock()
	r.accepted = append(r.accepted, id)
	r.submitLat = append(r.submitLat, time.Since(t0))
	r.mu.Unlock()
	switch kind {
	case "longpoll":
		for range 100 {
			j, err := r.c.Get(ctx, id, 20*time.Second)
			r.note(http.StatusOK, err)
			if err != nil || j.Terminal() {
				return
			}
		}
	case "sse":
		err := r.c.Events(ctx, id, func(f Frame) bool {
			switch f.Event {
			case "completed", "failed", "cancelled", "expired":
				return false
			}
			return true
		})
		r.note(http.StatusOK, err)
	case "poll":
		for range 1000 {
			j, err := r.c.Get(ctx, id, 0)
			r.note(http.StatusOK, err)
			if err != nil || j.Terminal() {
				return
			}
			if sleepCtx(ctx, r.cfg.PollEvery) != nil {
				return
			}
		}
	}
}
