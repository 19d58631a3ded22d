package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// Stream is a capped event stream: a job's or a batch's.
type Stream struct {
	Redis redis.UniversalClient
	Key   string
}

// Read reads the events after the stream id after ("" or "0" for all), at
// most count of them (0 = all).
func (s Stream) Read(ctx context.Context, after string, count int64) ([]jobs.Event, error) {
	start := "-"
	if after != "" && after != "0" {
		start = "(" + after
	}
	var msgs []redis.XMessage
	var err error
	if count > 0 {
		msgs, err = s.Redis.XRangeN(ctx, s.Key, start, "+", count).Result()
	} else {
		msgs, err = s.Redis.XRange(ctx, s.Key, start, "+").Result()
	}
	if err != nil {
		return nil, fmt.Errorf("read events %s: %w", s.Key, err)
	}
	out := make([]jobs.Event, 0, len(msgs))
	for _, m := range msgs {
		t, _ := m.Values["type"].(string)
		d, _ := m.Values["data"].(string)
		out = append(out, jobs.Event{ID: m.ID, Type: jobs.EventType(t), Data: json.RawMessage(d)})
	}
	return out, nil
}

// bounds returns the ids of the oldest and the newest event the stream
// keeps ("" when it is empty).
func (s Stream) bounds(ctx context.Context) (first, last string, err error) {
	head, err := s.Redis.XRangeN(ctx, s.Key, "-", "+", 1).Result()
	if err != nil {
		return "", "", fmt.Errorf("read events %s: %w", s.Key, err)
	}
	tail, err := s.Redis.XRevRangeN(ctx, s.Key, "+", "-", 1).Result()
	if err != nil {
		return "", "", fmt.Errorf("read events %s: %w", s.Key, err)
	}
	if len(head) > 0 {
		first = head[0].ID
	}
	if len(tail) > 0 {
		last = tail[0].ID
	}
	return first, last, nil
}
