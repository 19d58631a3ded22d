package api

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/qaqueue/qaqueue/config"
	"github.com/rs/zerolog"
)

var authSeeds = []string{
	"", "Bearer", "Bearer ", "Bearer k", "bearer  k", "BEARER k", "Bearer k k", "Bearer\tk", " Bearer k ",
	"Basic", "Basic ", "Basic !!!", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p")),
	"Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")), "Basic " + base64.StdEncoding.EncodeToString([]byte(":")),
	"Basic " + base64.StdEncoding.EncodeToString([]byte("u:p:with:colons")), "Basic dTpw=", "Digest x", "k",
	"Bearer \x00", "Bearer é", "Basic " + strings.Repeat("A", 4096),
}

// FuzzAuthorizationParsing: the header decoders never panic, and what they
// return is consistent: a bearer token holds no whitespace, and Basic
// credentials survive a round trip.
func FuzzAuthorizationParsing(f *testing.F) {
	for _, s := range authSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		if tok := bearerToken(header); strings.ContainsAny(tok, " \t") {
			t.Fatalf("bearer token %q holds whitespace", tok)
		}
		user, pass, ok := basicCredentials(header)
		if !ok {
			if user != "" || pass != "" {
				t.Fatal("credentials returned with ok=false")
			}
			return
		}
		again := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
		u2, p2, ok2 := basicCredentials(again)
		if !ok2 || u2 != user || p2 != pass {
			t.Fatalf("round trip of %q:%q gave %q:%q %v", user, pass, u2, p2, ok2)
		}
	})
}

// FuzzAuthenticate drives the authentication middleware with any
// Authorization header on any path: it lets the request through or answers
// 401 (403 for an API key on /metrics), never anything else (and never a
// 500), and only the real keys pass.
func FuzzAuthenticate(f *testing.F) {
	keys, err := config.ParseAPIKeys("alice:alice-key")
	if err != nil {
		f.Fatal(err)
	}
	admin, err := config.ParseAPIKeys("ops:ops-key")
	if err != nil {
		f.Fatal(err)
	}
	// A failure limit no run reaches: the fuzzer fails without end from
	// one address.
	failures, err := newAuthFailures(1<<30, 10)
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{cfg: Config{APIKeys: keys, AdminAPIKeys: admin}, log: zerolog.Nop(), authFailures: failures}
	s.authLog.sampler = newAuthLogSampler()
	for _, h := range append(authSeeds, "Bearer alice-key", "Bearer ops-key", "Basic "+base64.StdEncoding.EncodeToString([]byte("x:ops-key"))) {
		for _, p := range []string{"/v1/jobs", "/predict", "/metrics", "/monitoring/", "/health", "/"} {
			f.Add(h, p)
		}
	}
	gin.SetMode(gin.ReleaseMode)
	f.Fuzz(func(t *testing.T, header, path string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		rec := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(rec)
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = path
		req.Header.Set("Authorization", header)
		c.Request = req
		s.authenticate(c)
		if !c.IsAborted() {
			switch s.accessOf(path) {
			case accessUser:
				if owner(c) != "alice" {
					t.Fatalf("let %q through on %s as %q", header, path, owner(c))
				}
			case accessMetrics, accessDashboard:
				if owner(c) != "ops" {
					t.Fatalf("let %q through on %s as %q", header, path, owner(c))
				}
			}
			return
		}
		if rec.Code == http.StatusForbidden && s.accessOf(path) == accessMetrics && operatorCredentials(header) == "alice-key" {
			return // an API key on /metrics: 403, needs an admin key
		}
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("%q on %s: %d %v", header, path, rec.Code, rec.Header())
		}
		// A fixed answer: nothing of the header is echoed.
		switch rec.Body.String() {
		case `{"error":{"code":"unauthorized","message":"missing or invalid API key: send Authorization: Bearer <key>"}}` + "\n",
			`{"detail":"Not authenticated"}` + "\n":
		default:
			t.Fatalf("%q on %s: body %s", header, path, rec.Body.String())
		}
	})
}
