package api

import (
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
)

// Authentication (issue 8). With Config.APIKeys set, every request must carry
// "Authorization: Bearer <key>" except those to publicPaths; the key's name is
// the request's owner. /metrics and /monitoring/ want an admin key instead.
// Keys are compared in constant time (config.APIKeys.Lookup), never logged and
// never echoed.

// publicPaths hold no data and need no key: the probes, and the static pages
// and documents (/, /docs, /openapi.json). Exact paths (and the asset prefix
// below): anything else, routes added later included, is closed by default.
var publicPaths = map[string]bool{
	"/health": true, "/livez": true, "/readyz": true,
	"/": true, "/docs": true, "/openapi.json": true,
}

// publicPrefixes hold the static assets of those pages.
var publicPrefixes = []string{"/static/"}

func isPublic(path string) bool {
	if publicPaths[path] {
		return true
	}
	for _, p := range publicPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// access is what a path asks of its caller.
type access int

const (
	accessPublic    access = iota // nothing
	accessUser                    // an API key (or anonymous mode)
	accessMetrics                 // an admin key, unless Config.MetricsPublic
	accessDashboard               // an admin key; browsers use Basic auth
)

func (s *Server) accessOf(path string) access {
	switch {
	case isPublic(path):
		return accessPublic
	case path == "/metrics":
		if s.cfg.MetricsPublic {
			return accessPublic
		}
		return accessMetrics
	case path == monitoringRoot || strings.HasPrefix(path, monitoringRoot+"/"):
		return accessDashboard
	}
	return accessUser
}

// anonymous reports whether the API runs without API keys: every request
// acts for the owner "" and, unless admin keys are set, the operator pages
// are open too.
func (s *Server) anonymous() bool { return len(s.cfg.APIKeys) == 0 }

// authenticate is the global middleware that enforces accessOf. CORS
// preflights never get here (the CORS middleware answers them first). A
// client address over its failed-authentication limit is refused first
// (authlimit.go), before its key is looked at.
func (s *Server) authenticate(c *gin.Context) {
	access := s.accessOf(c.Request.URL.Path)
	if !s.needsKey(access) || s.refuseAuthFailures(c) {
		return
	}
	if n := len(c.Request.Header.Values("Authorization")); n > 1 {
		// Proxies and libraries disagree on which one counts: refuse to
		// pick.
		s.respond(c, &apiError{status: http.StatusBadRequest, code: "invalid_authorization", field: "Authorization",
			message: fmt.Sprintf("send one Authorization header, not %d", n)})
		return
	}
	if access == accessUser {
		key, ok := s.cfg.APIKeys.Lookup(bearerToken(c.GetHeader("Authorization")))
		if admin, isAdmin := s.cfg.AdminAPIKeys.Lookup(bearerToken(c.GetHeader("Authorization"))); !ok && isAdmin && takesAdminKeys(c.Request.URL.Path) {
			key, ok = admin, true // the registry's routes and /v1/usage take admin keys too
		}
		if !ok {
			s.unauthorized(c, `Bearer realm="qaqueue"`)
			return
		}
		s.setOwner(c, key.Name)
		return
	}
	presented := operatorCredentials(c.GetHeader("Authorization"))
	admin, ok := s.cfg.AdminAPIKeys.Lookup(presented)
	if !ok && access == accessMetrics {
		if _, user := s.cfg.APIKeys.Lookup(presented); user {
			s.respond(c, &apiError{status: http.StatusForbidden, code: "forbidden",
				message: "/metrics needs an admin key (ADMIN_API_KEYS): an API key does not open it"})
			return
		}
	}
	if !ok {
		challenge := `Bearer realm="qaqueue"`
		if access == accessDashboard {
			// Makes a browser ask for the key.
			challenge = `Basic realm="qaqueue monitoring", charset="UTF-8"`
		}
		s.unauthorized(c, challenge)
		return
	}
	s.setOwner(c, admin.Name)
}

// needsKey reports whether a request to a path of this access must carry a
// key.
func (s *Server) needsKey(access access) bool {
	switch access {
	case accessUser:
		return !s.anonymous()
	case accessMetrics, accessDashboard:
		// Open in qa dev, or with ALLOW_ANONYMOUS and no admin keys.
		return len(s.cfg.AdminAPIKeys) > 0 || !s.anonymous()
	}
	return false
}

// operatorCredentials is the key an operator page's Authorization header
// presents: "Bearer <key>" for tools and scrapers, or Basic auth for browsers
// with the key as the password and any user name (the key's name, by
// convention). "" when it presents none.
func operatorCredentials(header string) string {
	if presented := bearerToken(header); presented != "" {
		return presented
	}
	_, password, _ := basicCredentials(header)
	return password
}

// setOwner records who the request acts for, on the context and its logger
// (a key's name is safe to log; the key is not).
func (s *Server) setOwner(c *gin.Context, name string) {
	c.Set(ownerKey, name)
	log := zerolog.Ctx(c.Request.Context()).With().Str("owner", name).Logger()
	c.Request = c.Request.WithContext(log.WithContext(c.Request.Context()))
}

// unauthorized counts a failed authentication against the client's address
// and answers 401 with a WWW-Authenticate challenge, in the route's error
// style: {"error": {...}} on /v1, FastAPI's {"detail": ...} elsewhere.
func (s *Server) unauthorized(c *gin.Context, challenge string) {
	s.authFailures.fail(clientAddress(c), time.Now())
	c.Set(authFailedKey, true)
	c.Header("WWW-Authenticate", challenge)
	s.respond(c, &apiError{status: http.StatusUnauthorized, code: "unauthorized",
		message: "missing or invalid API key: send Authorization: Bearer <key>", detail: "Not authenticated"})
}

// ownedBy reports whether a resource (a job, a batch) that owner created is
// visible to the request. Answer 404, never 403, when it is not: another
// owner's resource must look like a missing one.
func ownedBy(c *gin.Context, resourceOwner string) bool {
	return resourceOwner == owner(c)
}

// bearerToken returns the credentials of "Bearer <token>" ("" for any other
// header). The scheme is case-insensitive (RFC 9110 §11.1).
func bearerToken(header string) string {
	scheme, cred := authScheme(header)
	if !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return cred
}

// basicCredentials decodes "Basic base64(user:password)" (RFC 7617).
func basicCredentials(header string) (user, password string, ok bool) {
	scheme, cred := authScheme(header)
	if !strings.EqualFold(scheme, "Basic") || cred == "" {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(cred)
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", false
	}
	return user, password, true
}

// authScheme splits an Authorization header into its scheme and credentials.
// Credentials hold no spaces (token68); anything else is malformed: "".
func authScheme(header string) (scheme, cred string) {
	header = strings.TrimSpace(header)
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok {
		return "", ""
	}
	cred = strings.TrimLeft(cred, " ")
	if cred == "" || strings.ContainsAny(cred, " \t") {
		return "", ""
	}
	return scheme, cred
}

// validateSecurity checks the security settings of a Config.
func (c Config) validateSecurity() []error {
	var errs []error
	for _, o := range c.CORSOrigins {
		if strings.Contains(o, "*") {
			errs = append(errs, fmt.Errorf("CORSOrigins must list each origin (credentials are allowed), got %q", o))
		}
	}
	if c.RateLimitRPS < 0 || math.IsNaN(c.RateLimitRPS) || math.IsInf(c.RateLimitRPS, 0) {
		errs = append(errs, fmt.Errorf("RateLimitRPS must be a number of requests per second, 0 for off, got %v", c.RateLimitRPS))
	}
	if c.RateLimitBurst < 0 {
		errs = append(errs, fmt.Errorf("RateLimitBurst must not be negative, got %d", c.RateLimitBurst))
	}
	for _, p := range c.TrustedProxies {
		// What gin's SetTrustedProxies accepts.
		ok := net.ParseIP(p) != nil
		if strings.Contains(p, "/") {
			_, _, err := net.ParseCIDR(p)
			ok = err == nil
		}
		if !ok {
			errs = append(errs, fmt.Errorf("TrustedProxies must list IP addresses or CIDRs, got %q", p))
		}
	}
	if c.TokenBudgetPerDay < 0 {
		errs = append(errs, fmt.Errorf("TokenBudgetPerDay must not be negative, got %d", c.TokenBudgetPerDay))
	}
	for _, admin := range c.AdminAPIKeys {
		for _, user := range c.APIKeys {
			if user.Name == admin.Name {
				errs = append(errs, fmt.Errorf("admin key name %q is also an API key name: they share one owner namespace", admin.Name))
			}
		}
	}
	return errs
}

// warnOpen logs, loudly, what is open to anyone who can reach the API.
func (s *Server) warnOpen() {
	if s.anonymous() {
		s.log.Warn().Bool("anonymous", true).
			Msg("SECURITY: API_KEYS is not set: the API is OPEN to anyone who can reach it, and every job is visible to every caller; set API_KEYS (and ADMIN_API_KEYS) before exposing it")
		if len(s.cfg.AdminAPIKeys) == 0 && !s.cfg.DisableMonitoring {
			s.log.Warn().Msg("SECURITY: ADMIN_API_KEYS is not set either: /monitoring/ and /metrics are open")
		}
		return
	}
	if len(s.cfg.AdminAPIKeys) == 0 {
		s.log.Warn().Msg("ADMIN_API_KEYS is not set: /monitoring/ and /metrics answer 401 to everyone" +
			map[bool]string{true: " (but METRICS_PUBLIC serves /metrics)", false: ""}[s.cfg.MetricsPublic])
	}
}
