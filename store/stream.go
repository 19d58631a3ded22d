package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// ReadStream reads a capped event stream after the stream id after ("" or
// "0" for all), at most count events (0 = all): jobs' and batches' alike.
func ReadStream(ctx context.Context, rdb redis.UniversalClient, key, after string, count int64) ([]jobs.Event, error) {
	start := "-"
	if after != "" && after != "0" {
		start = "(" + after
	}
	var msgs []redis.XMessage
	var err error
	if count > 0 {
		msgs, err = rdb.XRangeN(ctx, key, start, "+", count).Result()
	} else {
		msgs, err = rdb.XRange(ctx, key, start, "+").Result()
	}
	if err != nil {
		return nil, fmt.Errorf("read events %s: %w", key, err)
	}
	out := make([]jobs.Event, 0, len(msgs))
	for _, m := range msgs {
		t, _ := m.Values["type"].(string)
		d, _ := m.Values["data"].(string)
		out = append(out, jobs.Event{ID: m.ID, Type: jobs.EventType(t), Data: json.RawMessage(d)})
	}
	return out, nil
}
