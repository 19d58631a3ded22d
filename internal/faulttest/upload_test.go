package faulttest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/benchkit"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// uploadBytes is the size of each upload: just under BATCH_MAX_BYTES'
// default of 100 MB, the size the shipped limits allow.
const uploadBytes = 95_000_000

// TestUploadMemory: three ~95 MB batch uploads at once, valid or not, keep
// the API's peak RSS within 200 MB of its idle RSS, well inside the shipped
// containers' 1 GiB: a line is refused while it is read and items go to
// Redis in chunks, so neither a line nor an upload is ever held whole (three
// uploads held whole, each copied as it is checked, would take about
// 900 MB). The binary is built without the race detector, which would
// inflate memory.
func TestUploadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends about 850 MB through the API")
	}
	// A Redis of its own: the valid uploads store about 285 MB.
	db := redistest.NewServer(t)
	keys := []string{"ka-upload-memory", "kb-upload-memory", "kc-upload-memory"}
	b := setup(t, db, fakelm.Config{}, "API_KEYS=a:"+keys[0]+",b:"+keys[1]+",c:"+keys[2], "ALLOW_ANONYMOUS=false")
	base := b.c.Base

	// Idle: after one small upload, so the code paths have run once.
	if status, body := upload(t, base, keys[0], strings.NewReader(`{"question":"warm up?"}`+"\n"), -1); status != http.StatusAccepted {
		t.Fatalf("warm-up upload: %d %s", status, body)
	}
	idle, err := b.api.RSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("idle API RSS: %d MB", idle>>20)

	// ~1,900 bytes a line: 50,000 lines (BATCH_MAX_ITEMS' default) of normal size.
	normal := func(i int) string {
		return fmt.Sprintf(`{"custom_id":"item-%05d","question":"%s"}`, i, strings.Repeat("q", 1850))
	}
	scenarios := []struct {
		name string
		want int
		body func() io.Reader
	}{
		{"one huge line", http.StatusUnprocessableEntity, func() io.Reader {
			return io.MultiReader(strings.NewReader(`{"question":"`), io.LimitReader(repeatByte('x'), uploadBytes), strings.NewReader(`"}`+"\n"))
		}},
		{"many lines, valid", http.StatusAccepted, func() io.Reader {
			return genBody(50_000, normal)
		}},
	}
	for _, sc := range scenarios {
		start := time.Now()
		if err := benchkit.ResetPeakRSS(b.api.PID()); err != nil {
			t.Fatalf("reset peak RSS: %v", err)
		}
		var wg sync.WaitGroup
		for _, key := range keys {
			wg.Go(func() {
				if status, out := upload(t, base, key, sc.body(), -1); status != sc.want {
					t.Errorf("%s: upload answered %d, want %d: %.300s", sc.name, status, sc.want, out)
				}
			})
		}
		wg.Wait()
		peak, err := benchkit.PeakRSS(b.api.PID())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: peak API RSS %d MB (%+d MB over idle), in %v", sc.name, peak>>20, (peak-idle)>>20, time.Since(start).Round(time.Second))
		if peak-idle > 200<<20 {
			t.Errorf("%s: peak API RSS %d MB is %d MB over idle (%d MB); the bound is 200 MB", sc.name, peak>>20, (peak-idle)>>20, idle>>20)
		}
	}
}

// upload posts body as a JSONL batch with key; n is its length, or -1.
func upload(t *testing.T, base, key string, body io.Reader, n int64) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxFor(t, 5*time.Minute), http.MethodPost, base+"/v1/batches", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("upload: %v", err)
		return 0, ""
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(out)
}

// repeatByte is an endless stream of one byte.
type repeatByte byte

func (r repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// genBody is a JSONL body of n lines made one at a time by line, so the
// test holds one line, not the upload.
func genBody(n int, line func(i int) string) io.Reader {
	return &lineGen{n: n, line: line}
}

type lineGen struct {
	n, i int
	line func(int) string
	cur  string
}

func (g *lineGen) Read(p []byte) (int, error) {
	for g.cur == "" {
		if g.i == g.n {
			return 0, io.EOF
		}
		g.cur = g.line(g.i) + "\n"
		g.i++
	}
	n := copy(p, g.cur)
	g.cur = g.cur[n:]
	return n, nil
}
