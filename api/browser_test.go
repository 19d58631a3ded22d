package api_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/qaqueue/qaqueue/api"
	"github.com/qaqueue/qaqueue/internal/browsertest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// recordCSPViolations runs in every page before its own scripts and keeps
// what the Content-Security-Policy blocked.
const recordCSPViolations = `window.__csp = [];
document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`

// TestDashboardInABrowser opens /monitoring/ in headless Chromium: without
// credentials there is no dashboard; with the admin key (Basic auth, as a
// browser sends it after its login prompt) the queues page lists both
// queues, the page's CSP blocks nothing, and no request leaves the host
// (asynqmon's page links Google Fonts; the dashboard must work offline).
func TestDashboardInABrowser(t *testing.T) {
	t.Parallel()
	ctx := browsertest.New(t, 2*patience)
	requests := recordRequests(t, ctx)
	b := setup(t, options{api: secured(t, api.Config{})})
	b.submitAs(t, aliceKey, "a question on the interactive queue")
	if _, err := b.client.Submit(context.Background(), store.SubmitRequest{Spec: jobs.Spec{
		ClientSpec: jobs.QuestionSpec("a batch question"), ServerSpec: jobs.ServerSpec{Owner: "alice", Queue: jobs.QueueBatch}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordCSPViolations}); err != nil {
		t.Fatal(err)
	}

	// Headless Chromium has nobody to ask for a password: it ends the
	// navigation at the 401's Basic challenge (net::ERR_INVALID_AUTH_CREDENTIALS).
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.url+"/monitoring/"))
	switch {
	case err != nil && !strings.Contains(err.Error(), "ERR_INVALID_AUTH_CREDENTIALS"):
		t.Fatal(err)
	case err == nil && resp.Status != http.StatusUnauthorized:
		t.Fatalf("without credentials: %d", resp.Status)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(t, ctx, "dashboard-without-credentials")
	if strings.Contains(text, "interactive") || strings.Contains(text, "Queues") {
		t.Fatalf("without credentials the page shows %.300q", text)
	}

	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:"+opsKey))
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}
	resp, err = chromedp.Run(ctx, chromedp.NavigateResponse(b.url+"/monitoring/"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("with the admin key: %d", resp.Status)
	}
	// The queues table is filled in by the app's own API calls.
	listed := `(() => { const cells = [...document.querySelectorAll("td, th, a")].map(e => e.textContent.trim());
		return cells.includes("interactive") && cells.includes("batch"); })()`
	wctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	if _, err := chromedp.Run(wctx, chromedp.Poll[bool](listed, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		browsertest.Screenshot(t, ctx, "dashboard-queues-missing")
		t.Fatalf("the queues page does not list interactive and batch: %v; page text %.500q", err, text)
	}
	browsertest.Screenshot(t, ctx, "dashboard-queues")
	noCSPViolations(t, ctx, "/monitoring/")
	if len(requests.urls()) < 3 {
		t.Errorf("recorded only %q: is the recorder on?", requests.urls())
	}
	for _, u := range requests.offHost(b.url) {
		t.Errorf("the dashboard asked another host for %s", u)
	}
}

// requestLog keeps the URL of every request a browser tab sends.
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

// recordRequests starts keeping the URLs ctx's tab requests.
func recordRequests(t *testing.T, ctx context.Context) *requestLog {
	t.Helper()
	l := &requestLog{}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			l.mu.Lock()
			l.seen = append(l.seen, e.Request.URL)
			l.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("browser: listen for requests: %v", err)
	}
	return l
}

func (l *requestLog) urls() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

// offHost lists the requests to anywhere but base's host (data: URLs stay
// in the page).
func (l *requestLog) offHost(base string) []string {
	host := strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
	var out []string
	for _, u := range l.urls() {
		if strings.HasPrefix(u, "data:") {
			continue
		}
		if rest, ok := strings.CutPrefix(u, "http://"+host); !ok || (rest != "" && rest[0] != '/') {
			out = append(out, u)
		}
	}
	return out
}
