package lmclient

import (
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// TestCacheNamespacedByEndpoint: two servers that answer to the same model
// name are not the same model. An answer cached from one, in every
// persistent layer (a real disk directory and a real Redis), is not served
// to a client of the other; a client of the same endpoint still hits.
func TestCacheNamespacedByEndpoint(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	dir := t.TempDir()
	layers := func(c *Config, d *Deps) {
		c.DiskEnabled, c.Dir, c.RedisEnabled, c.MemoryEnabled = true, dir, true, true
		d.Redis = db.Client
	}
	a := setup(t, layers)
	first := completeAccept(t, a.c, chatRequest("Whose answer is this?"))

	other, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	cfgB := a.cfg
	cfgB.APIBase = other.URL()
	b := newClient(t, cfgB, Deps{Redis: db.Client})
	comp, err := b.Complete(ctxT(t), chatRequest("Whose answer is this?"))
	if err != nil {
		t.Fatal(err)
	}
	if comp.CacheHit || other.RequestsTo("/v1/chat/completions") != 1 {
		t.Fatalf("the other endpoint's client got a cache hit (%v) and %d calls to its server: answers leak across endpoints",
			comp.CacheHit, other.RequestsTo("/v1/chat/completions"))
	}

	// A new process on the first endpoint still reads the disk and Redis.
	for _, mod := range []func(*Config){
		func(c *Config) { c.RedisEnabled = false },
		func(c *Config) { c.DiskEnabled = false },
	} {
		cfg := a.cfg
		mod(&cfg)
		again := newClient(t, cfg, Deps{Redis: db.Client})
		hit, err := again.Complete(ctxT(t), chatRequest("Whose answer is this?"))
		if err != nil || !hit.CacheHit || hit.Text != first.Text {
			t.Fatalf("same endpoint (disk %v, redis %v): %+v, %v", cfg.DiskEnabled, cfg.RedisEnabled, hit, err)
		}
	}
	if calls(a) != 1 {
		t.Errorf("first endpoint: %d LM calls, want 1", calls(a))
	}
}

// TestCooldownPerEndpoint: a provider's 429 cool-down holds the callers of
// that endpoint (TestSharedCooldown), not those of another server that
// answers to the same model name on the same Redis.
func TestCooldownPerEndpoint(t *testing.T) {
	t.Parallel()
	db := redistest.New(t)
	log := &redistest.CommandLog{Keep: notHandshake}
	db.Client.AddHook(log)
	a := setup(t, withRedis(db), func(c *Config, _ *Deps) { c.MaxWait = 100 * time.Millisecond })
	a.srv.FailNext(1, fakelm.Status429(30*time.Second))
	if _, err := a.c.Complete(ctxT(t), chatRequest("throttled")); err == nil {
		t.Fatal("first call succeeded, want the 429")
	}
	other, err := fakelm.New(fakelm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	cfgB := a.cfg
	cfgB.APIBase = other.URL()
	b := newClient(t, cfgB, Deps{Redis: db.Client})
	followed(t, log, b) // b has read its endpoint's cool-down: none
	if _, err := b.Complete(ctxT(t), chatRequest("another")); err != nil {
		t.Fatalf("the other endpoint's call = %v: the first endpoint's cool-down held it", err)
	}
}
