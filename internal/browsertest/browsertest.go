// Package browsertest drives Debian's headless Chromium from Go tests through
// chromedp, and writes screenshots as test artifacts.
//
// Without a chromium binary a test is skipped — except with CI=true, where it
// fails: CI installs chromium (.ci/run) and must not pass by skipping.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// candidates are where Debian and other distributions put Chromium.
var candidates = []string{"chromium", "chromium-browser", "google-chrome"}

// Find returns the browser binary, or "" when none is installed.
func Find() string {
	if p := os.Getenv("QA_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// chromedp v0.23's API is generic: chromedp.Run(ctx, action) returns the
// action's value, and chromedp.Do(ctx, actions...) runs several.

// New starts a headless browser for t and returns a context to run chromedp
// actions in; it is torn down when the test ends. timeout bounds the whole
// browser session (a hang guard, not a performance assertion).
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	bin := Find()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("browsertest: chromium not found and CI=true: install it (apt-get install -y chromium)")
		}
		t.Skip("browsertest: chromium not installed (apt-get install -y chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		// The machine has no network beyond loopback: keep Chromium from
		// trying to reach its own services.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// Screenshot saves a full-page PNG as an artifact: in $QA_TEST_ARTIFACTS
// (default testdata/artifacts beside the test) under name.png, and returns its
// path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	dir := os.Getenv("QA_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100 means PNG; below is JPEG
	if err != nil {
		t.Fatalf("browsertest: screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	t.Logf("screenshot: %s", path)
	return path
}
