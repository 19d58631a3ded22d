package programs

import (
	"context"
	"time"
)

// RunWith runs the alias cache's loop with or without the pub/sub notices
// and with a refresh interval of its own, so a test can tell the two paths
// apart. ready is closed once the subscription is confirmed (at once
// without one), so a move after it cannot be missed.
func (r *Registry) RunWith(ctx context.Context, subscribe bool, interval time.Duration, ready chan<- struct{}, onError func(error)) {
	r.cfg.RefreshInterval = interval
	if !subscribe {
		close(ready)
		r.loop(ctx, nil, interval, onError)
		return
	}
	sub := r.rdb.Subscribe(ctx, AliasChannel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		onError(err)
	}
	close(ready)
	r.loop(ctx, sub.Channel(), interval, onError)
}

// Cached is what the LRU of compiled versions holds: how many, and their
// pushed bytes.
func (r *Registry) Cached() (n int, bytes int64) {
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	return r.compiled.Len(), r.cachedBytes
}
