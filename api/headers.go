package api

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"
)

// Security headers (issue 8). Every answer gets nosniff, no-referrer,
// X-Frame-Options DENY and a Content-Security-Policy that allows nothing:
// JSON, SSE and Prometheus text load nothing and are framed by nobody. HTML
// pages replace the policy with setPageCSP; the dashboard gets its own
// (monitoringCSP).

// cspNone is the policy of everything that is not a page.
const cspNone = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// cspPage is the policy for the API's own HTML pages (/, /docs): scripts,
// styles, images and fetches from this origin only, no inline script, no
// plugins, no framing.
const cspPage = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders sets the headers every answer carries.
func (s *Server) securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h["X-Content-Type-Options"] = nosniff
	h["Referrer-Policy"] = noReferrer
	h["X-Frame-Options"] = frameDeny
	h["Content-Security-Policy"] = cspNoneValue
}

// Header values every answer shares instead of a fresh []string each
// (Header.Set's): the server only reads them, a Set replaces the slice, and
// an Add copies it (its capacity is its length). The keys are canonical.
var (
	nosniff         = constHeader("nosniff")
	noReferrer      = constHeader("no-referrer")
	frameDeny       = constHeader("DENY")
	cspNoneValue    = constHeader(cspNone)
	jsonContentType = constHeader("application/json")
)

func constHeader(v string) []string { return []string{v}[:1:1] }

// setPageCSP gives an HTML answer the page policy (cspPage) in place of
// cspNone, with the given inline scripts allowed by hash: pass the exact text
// between <script> and </script> of each. Call it before writing the body.
// For other needs build a policy from cspPage and set the header directly.
func setPageCSP(c *gin.Context, inlineScripts ...string) {
	c.Header("Content-Security-Policy", pagePolicy(inlineScripts...))
}

// pagePolicy is cspPage with the given inline scripts allowed by hash.
func pagePolicy(inlineScripts ...string) string {
	if len(inlineScripts) == 0 {
		return cspPage
	}
	hashes := make([]string, len(inlineScripts))
	for i, src := range inlineScripts {
		hashes[i] = cspScriptHash(src)
	}
	return strings.Replace(cspPage, "script-src 'self'", "script-src 'self' "+strings.Join(hashes, " "), 1)
}

// cspScriptHash is the CSP source expression that allows one inline script
// whose text (between <script> and </script>) is src.
func cspScriptHash(src string) string {
	sum := sha256.Sum256([]byte(src))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

var inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

// inlineScripts returns the text of each inline <script> of an HTML page.
func inlineScripts(page string) []string {
	var out []string
	for _, m := range inlineScript.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

// monitoringCSP is the dashboard's policy. asynqmon's index.html has two
// inline scripts (its settings, which carry the root path and read-only flag,
// and webpack's bootstrap); they are allowed by hash, computed from the page
// the handler actually renders, so no other inline script runs. Material UI
// injects <style> elements at run time, which needs style-src
// 'unsafe-inline' (styles cannot run code; the UI shows task payloads as
// React text). Nothing comes from another host: the page is served without
// its Google Fonts links (offlineIndex). Only if the page cannot be read does
// it fall back to script-src 'unsafe-inline'.
func monitoringCSP(h http.Handler) string {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, monitoringRoot+"/", nil))
	script := "'unsafe-inline'"
	if scripts := inlineScripts(rec.Body.String()); rec.Code == http.StatusOK && len(scripts) > 0 {
		hashes := make([]string, len(scripts))
		for i, src := range scripts {
			hashes[i] = cspScriptHash(src)
		}
		script = strings.Join(hashes, " ")
	}
	return "default-src 'none'; script-src 'self' " + script + "; " +
		"style-src 'self' 'unsafe-inline'; font-src 'self' data:; " +
		"img-src 'self' data:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}
