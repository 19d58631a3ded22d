package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// Failed authentications (issue 13). Each client address may fail
// Config.AuthFailuresPerMinute times a minute (as a burst, refilled evenly);
// over that, every request from it that needs a key gets 429 before its key
// is looked at, so the limit cannot tell a right key from a wrong one.
//
// The counts are per API process, in memory: checking them costs a
// successful request no Redis round trip (a shared count would cost every
// request one), and a client behind a balancer over N replicas gets at most
// N times the limit, which is still a limit. Memory is bounded: the counts
// live in an LRU of Config.AuthFailureAddresses addresses, where the address
// that failed least recently is forgotten first.

// authFailures counts failed authentications per client address.
type authFailures struct {
	every rate.Limit
	burst int
	addrs *lru.Cache[string, *rate.Limiter]
}

func newAuthFailures(perMinute, addresses int) (*authFailures, error) {
	addrs, err := lru.New[string, *rate.Limiter](addresses)
	if err != nil {
		return nil, fmt.Errorf("api: auth failure counts: %w", err)
	}
	return &authFailures{every: rate.Limit(float64(perMinute) / 60), burst: perMinute, addrs: addrs}, nil
}

// blocked reports whether addr is over its limit at now, and how long until
// it may try again. Addresses that never failed are not stored.
func (f *authFailures) blocked(addr string, now time.Time) (time.Duration, bool) {
	lim, ok := f.addrs.Peek(addr)
	if !ok {
		return 0, false
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	return time.Duration((1 - tokens) / float64(f.every) * float64(time.Second)), true
}

// fail counts one failed authentication from addr at now.
func (f *authFailures) fail(addr string, now time.Time) {
	lim, ok := f.addrs.Get(addr)
	if !ok {
		lim = rate.NewLimiter(f.every, f.burst)
		if prev, found, _ := f.addrs.PeekOrAdd(addr, lim); found {
			lim = prev // another request added it first
		}
	}
	lim.AllowN(now, 1)
}

// clientAddress is what failed authentications are counted against: the
// client's address (behind Config.TrustedProxies, the one they forward), an
// IPv6 one by its /64, which one host usually holds whole.
func clientAddress(c *gin.Context) string {
	ip := c.ClientIP()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// authFailedKey marks, on the gin context, a request refused for its
// credentials: the access log samples those lines.
const authFailedKey = "qa.authFailed"

// refuseAuthFailures answers 429 when the client's address is over its
// failure limit; false when it may go on.
func (s *Server) refuseAuthFailures(c *gin.Context) bool {
	wait, over := s.authFailures.blocked(clientAddress(c), time.Now())
	if !over {
		return false
	}
	c.Set(authFailedKey, true)
	s.respond(c, &apiError{status: http.StatusTooManyRequests, code: "auth_rate_limited", retryAfter: wait,
		message: fmt.Sprintf("too many failed authentications from this address (AUTH_FAILURES_PER_MINUTE: %d a minute); retry later",
			s.cfg.AuthFailuresPerMinute)})
	return true
}

// authLogSampler lets through the access log lines of failed
// authentications: a burst of 10 a minute, then one in 100. A client that
// can send them at will cannot flood the log; each line that is written
// counts the ones left out before it (authLog).
func newAuthLogSampler() zerolog.Sampler {
	return &zerolog.BurstSampler{Burst: 10, Period: time.Minute, NextSampler: &zerolog.BasicSampler{N: 100}}
}

// authLog is the access log's logger for a request refused for its
// credentials: sampled, each written line carrying in unlogged_auth_failures
// how many such lines were left out since the last one written.
type authLog struct {
	sampler  zerolog.Sampler
	unlogged atomic.Int64
}

// event returns the access log's event for a failed authentication, nil
// (which zerolog ignores) when the sampler leaves it out.
func (l *authLog) event(log *zerolog.Logger, level zerolog.Level) *zerolog.Event {
	sampled := log.Sample(l.sampler)
	ev := sampled.WithLevel(level)
	if !ev.Enabled() {
		l.unlogged.Add(1)
		return nil
	}
	return ev.Int64("unlogged_auth_failures", l.unlogged.Swap(0))
}
