package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

//go:embed record.lua
var recordLua string

// Errors the record operations return; callers branch on them with errors.Is.
var (
	// ErrNotFound: no such job (never existed, expired, or deleted).
	ErrNotFound = errors.New("job not found")
	// ErrTerminal: the job has already ended; the change was refused.
	ErrTerminal = errors.New("job has already ended")
	// ErrStale: the change belongs to an attempt that is no longer current.
	ErrStale = errors.New("attempt is no longer current")
	// ErrActive: the job has not ended, so it cannot be deleted.
	ErrActive = errors.New("job has not ended")
)

// Jobs reads and changes job records. It is safe for concurrent use.
type Jobs struct {
	rdb    redis.UniversalClient
	cfg    Config
	script *redis.Script
	now    func() time.Time
}

// NewJobs returns the job records on rdb.
func NewJobs(rdb redis.UniversalClient, cfg Config) (*Jobs, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Jobs{rdb: rdb, cfg: cfg, script: NewScript(recordLua), now: time.Now}, nil
}

// Config returns the effective configuration, defaults filled in.
func (s *Jobs) Config() Config { return s.cfg }

// Redis returns the client the job records are read and written through.
func (s *Jobs) Redis() redis.UniversalClient { return s.rdb }

// run executes one op of the record script and returns its reply as strings.
func (s *Jobs) run(ctx context.Context, op, id string, extraKeys [2]string, args ...any) ([]string, error) {
	return s.runAt(ctx, s.now(), op, id, extraKeys, args...)
}

// runAt is run with the time the script records given explicitly.
func (s *Jobs) runAt(ctx context.Context, now time.Time, op, id string, extraKeys [2]string, args ...any) ([]string, error) {
	keys := []string{jobs.JobKey(id), jobs.EventsKey(id), extraKeys[0], extraKeys[1]}
	argv := append([]any{op, now.UnixMilli(), jobs.Channel(id), s.cfg.StreamCap, id}, args...)
	reply, err := s.script.Run(ctx, s.rdb, keys, argv...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("%s job %s: %w", op, id, err)
	}
	if len(reply) == 0 {
		return nil, fmt.Errorf("%s job %s: empty reply", op, id)
	}
	switch reply[0] {
	case "missing":
		return reply, ErrNotFound
	case "terminal":
		return reply, ErrTerminal
	case "stale":
		return reply, ErrStale
	case "active":
		return reply, ErrActive
	}
	return reply, nil
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own plain structs are marshalled here.
		panic(fmt.Sprintf("store: marshal %T: %v", v, err))
	}
	return string(b)
}

// Get reads a job record.
func (s *Jobs) Get(ctx context.Context, id string) (*jobs.Job, error) {
	h, err := s.rdb.HGetAll(ctx, jobs.JobKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("read job %s: %w", id, err)
	}
	if len(h) == 0 || h["status"] == "" {
		return nil, ErrNotFound
	}
	return decodeJob(h)
}

func decodeJob(h map[string]string) (*jobs.Job, error) {
	j := &jobs.Job{ID: h["id"], Status: jobs.Status(h["status"])}
	if v, ok := h["spec"]; ok {
		spec, err := jobs.ParseSpec([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("decode job %s: %w", j.ID, err)
		}
		j.Spec = spec
	} else {
		j.Spec = legacySpec(h)
	}
	j.Attempts, _ = strconv.Atoi(h["attempts"])
	j.CreatedAt = msTime(h["created_at"])
	if t := msTime(h["started_at"]); !t.IsZero() {
		j.StartedAt = &t
	}
	if t := msTime(h["finished_at"]); !t.IsZero() {
		j.FinishedAt = &t
	}
	if v := h["result"]; v != "" {
		r, err := jobs.ParseResult([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("decode job %s result: %w", j.ID, err)
		}
		j.Result = r
	}
	if v := h["error"]; v != "" {
		if err := json.Unmarshal([]byte(v), &j.Error); err != nil {
			return nil, fmt.Errorf("decode job %s error: %w", j.ID, err)
		}
	}
	return j, nil
}

// legacySpec is the spec of a record release 114e39c wrote: it holds the
// fields question, owner, queue, stream and no_cache instead of spec. Such
// records are gone PendingTTL (7 days) plus ResultTTL (24 hours) after the
// upgrade, and this reader can go with them.
func legacySpec(h map[string]string) jobs.Spec {
	s := jobs.Spec{ClientSpec: jobs.QuestionSpec(h["question"]), ServerSpec: jobs.ServerSpec{Owner: h["owner"], Queue: h["queue"]}}
	s.Options = jobs.Options{Stream: h["stream"] == "1", NoCache: h["no_cache"] == "1"}
	return s
}

func msTime(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// Events returns the job's events after the stream id after ("" or "0" for all),
// at most count of them (0 = all).
func (s *Jobs) Events(ctx context.Context, id, after string, count int64) ([]jobs.Event, error) {
	evs, err := s.stream(id).Read(ctx, after, count)
	if err != nil {
		return nil, fmt.Errorf("read events of job %s: %w", id, err)
	}
	return evs, nil
}

func (s *Jobs) stream(id string) Stream { return Stream{Redis: s.rdb, Key: jobs.EventsKey(id)} }

// Source is job id as a follow's source (Follow).
func (s *Jobs) Source(id string) Source[*jobs.Job] { return jobSource{jobs: s, id: id} }

// jobSource follows a job.
type jobSource struct {
	jobs *Jobs
	id   string
}

func (j jobSource) Channel() string                             { return jobs.Channel(j.id) }
func (j jobSource) Stream() Stream                              { return j.jobs.stream(j.id) }
func (j jobSource) Load(ctx context.Context) (*jobs.Job, error) { return j.jobs.Get(ctx, j.id) }
func (j jobSource) Ended(r *jobs.Job) bool                      { return r.Status.Terminal() }

// EndedBy is r completed as a completed event's message says (the record
// script sends the record's end with it: jobs.Event.Ended); false for
// another event, or a message without it (a worker of an earlier release).
func (j jobSource) EndedBy(r *jobs.Job, ev jobs.Event) (*jobs.Job, bool) {
	if ev.Type != jobs.EventCompleted || ev.Ended == nil || r == nil {
		return nil, false
	}
	d, err := jobs.ParseCompleted(ev.Data)
	if err != nil {
		return nil, false
	}
	out := *r
	out.Status, out.Result, out.Error, out.Attempts = jobs.StatusCompleted, d.Result, nil, ev.Ended.Attempts
	out.StartedAt, out.FinishedAt = msPointer(ev.Ended.StartedAt), msPointer(ev.Ended.FinishedAt)
	return &out, true
}

// msPointer is the time of Unix milliseconds ms as decodeJob reads it; nil
// for 0.
func msPointer(ms int64) *time.Time {
	if ms <= 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

// Cancel ends a job that has not ended yet and tells the worker running it.
// It returns the status the job had, or ErrTerminal / ErrNotFound.
func (s *Jobs) Cancel(ctx context.Context, id string) (jobs.Status, error) {
	prev, _, err := s.cancel(ctx, id)
	return prev, err
}

// cancel is Cancel that also returns the job's current asynq task id.
func (s *Jobs) cancel(ctx context.Context, id string) (prev jobs.Status, taskID string, err error) {
	reply, err := s.run(ctx, "cancel", id, [2]string{}, ms(s.cfg.ResultTTL))
	if err != nil {
		if errors.Is(err, ErrTerminal) && len(reply) > 1 {
			return jobs.Status(reply[1]), "", err
		}
		return "", "", err
	}
	return jobs.Status(reply[1]), reply[2], nil
}

// Delete removes an ended job's record and events (ErrActive if it has not
// ended).
func (s *Jobs) Delete(ctx context.Context, id string) error {
	_, err := s.delete(ctx, id)
	return err
}

// delete is Delete that also returns the job's last asynq task id.
func (s *Jobs) delete(ctx context.Context, id string) (taskID string, err error) {
	reply, err := s.run(ctx, "delete", id, [2]string{})
	if err != nil {
		return "", err
	}
	return reply[1], nil
}
