package api

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestAuthFailuresCount: a burst of the per-minute limit, then one more a
// minute/limit later; addresses that never failed are not stored, and no
// more than the configured number of addresses are kept.
func TestAuthFailuresCount(t *testing.T) {
	t.Parallel()
	f, err := newAuthFailures(3, 100)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0)
	if _, over := f.blocked("a", t0); over || f.addrs.Len() != 0 {
		t.Fatalf("an address that never failed: blocked %v, %d stored", over, f.addrs.Len())
	}
	for i := range 3 {
		if _, over := f.blocked("a", t0); over {
			t.Fatalf("blocked after %d failures of 3", i)
		}
		f.fail("a", t0)
	}
	wait, over := f.blocked("a", t0)
	if !over || wait != 20*time.Second {
		t.Fatalf("after 3 failures: blocked %v, wait %v; want true, 20s", over, wait)
	}
	if _, over := f.blocked("b", t0); over {
		t.Fatal("another address is blocked")
	}
	if _, over := f.blocked("a", t0.Add(20*time.Second)); over {
		t.Fatal("still blocked a token's time later")
	}
	for i := range 1000 {
		f.fail(fmt.Sprintf("10.0.%d.%d", i/256, i%256), t0)
	}
	if n := f.addrs.Len(); n != 100 {
		t.Errorf("%d addresses kept, want the cap of 100", n)
	}
}

func TestAuthLimitConfig(t *testing.T) {
	t.Parallel()
	c := Config{TrustedProxies: []string{"10.0.0.0/8", "::1", "192.168.1.2"}}.WithDefaults()
	if err := c.validate(); err != nil || c.AuthFailuresPerMinute != 60 || c.AuthFailureAddresses != 10000 {
		t.Errorf("defaults: %d, %d, %v", c.AuthFailuresPerMinute, c.AuthFailureAddresses, err)
	}
	err := Config{TrustedProxies: []string{"proxy.internal", "fe80::1%eth0", "10.0.0.1/33"}, AuthFailuresPerMinute: -1}.WithDefaults().validate()
	for _, want := range []string{`"proxy.internal"`, `"fe80::1%eth0"`, `"10.0.0.1/33"`, "AuthFailuresPerMinute"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad config: %v, want it to name %s", err, want)
		}
	}
}
