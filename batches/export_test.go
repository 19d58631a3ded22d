package batches

import "time"

// SetClock makes b read the time from now, so a test can move past a
// batch's life instead of waiting for it.
func SetClock(b *Store, now func() time.Time) { b.now = now }
