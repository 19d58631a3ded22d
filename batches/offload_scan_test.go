package batches_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/qaqueue/qaqueue/batches"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
	"github.com/redis/go-redis/v9"
)

// rehashing is a go-redis hook that, after each HSCAN page of key, has
// another client delete the hash's filler fields (its table shrinks: Redis
// rehashes it smaller) or put them back, and records each page's fields.
type rehashing struct {
	key    string
	other  *redis.Client
	filler int

	mu    sync.Mutex
	full  bool
	pages [][]string
}

func (*rehashing) DialHook(next redis.DialHook) redis.DialHook { return next }

func (*rehashing) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *rehashing) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		sc, ok := cmd.(*redis.ScanCmd)
		if !ok || err != nil || cmd.Name() != "hscan" {
			return err
		}
		fields, _ := sc.Val()
		h.mu.Lock()
		h.pages = append(h.pages, fields)
		h.mu.Unlock()
		return h.churn(ctx)
	}
}

// churn deletes the filler when it is there, else puts it back.
func (h *rehashing) churn(ctx context.Context) error {
	p := h.other.Pipeline()
	for i := range h.filler {
		f := "x:" + strconv.Itoa(i)
		if h.full {
			p.HDel(ctx, h.key, f)
		} else {
			p.HSet(ctx, h.key, f, "x")
		}
	}
	h.full = !h.full
	// Each command on the hash moves its rehash on a step: these end it.
	for range 2 * (h.filler + 1000) {
		p.HExists(ctx, h.key, "x:0")
	}
	_, err := p.Exec(ctx)
	return err
}

// TestOffloadCostCountsEachItemOnce: HSCAN may return a field twice when
// the hash's table shrinks between two of its pages (Redis rehashes it
// smaller, and the cursor covers part of what it had seen again): the cost
// sum counts each item's cost once all the same. Where the repeat falls
// depends on the server's hash seed, so the test tries fresh field names
// (another round's) until a page repeats one (15-45% of tries do, as
// measured here).
func TestOffloadCostCountsEachItemOnce(t *testing.T) {
	ctx := context.Background()
	db := redistest.New(t)
	other := redis.NewClient(db.Options())
	t.Cleanup(func() { _ = other.Close() })
	h := &rehashing{other: other, filler: 7000}
	db.Client.AddHook(h)
	js, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := batches.NewStore(js, batches.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// 800 items: after the filler goes, the table is a tenth of its size
	// and densely filled, so the part seen again holds some.
	const items = 800
	for try := range 100 {
		id := "b" + strconv.Itoa(try)
		h.key, h.full, h.pages = jobs.BatchOffloadKey(id), false, nil
		p := other.Pipeline()
		for i := range items {
			p.HSet(ctx, h.key, "cost:"+strconv.Itoa(try+1)+":"+strconv.Itoa(i), `{"m":1,"l":2,"p":1}`)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.churn(ctx); err != nil {
			t.Fatal(err)
		}
		sum, err := bs.OffloadCost(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := (batches.ItemCost{Micros: items, LiveMicros: 2 * items, ProviderCalls: items}); sum != want {
			t.Fatalf("cost %+v, want %+v: each item once", sum, want)
		}
		if h.repeated() {
			return
		}
	}
	t.Fatal("no HSCAN page repeated a field in 100 tries: the test did not exercise a repeat")
}

// repeated reports whether the pages returned a field twice.
func (h *rehashing) repeated() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, pg := range h.pages {
		for i := 0; i < len(pg); i += 2 {
			if seen[pg[i]] {
				return true
			}
			seen[pg[i]] = true
		}
	}
	return false
}
