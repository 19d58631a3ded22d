package benchkit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// LM is a fake LM that also counts its chat answers by status and its chat
// calls in flight.
type LM struct {
	*fakelm.Server
	http *http.Server
	ln   net.Listener

	mu          sync.Mutex
	statuses    map[int]int64
	answers     []Answer
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	conns       atomic.Int64
	uploaded    atomic.Int64
}

// StartLM starts a counting fake LM on a free loopback port.
func StartLM(cfg fakelm.Config) (*LM, error) {
	fs, err := fakelm.NewUnstarted(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen fakelm: %w", err)
	}
	l := &LM{Server: fs, ln: ln, statuses: map[int]int64{}}
	inner := fs.Handler()
	l.http = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/files") {
				r.Body = &countingBody{ReadCloser: r.Body, n: &l.uploaded}
			}
			inner.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		n := l.inFlight.Add(1)
		for m := l.maxInFlight.Load(); n > m && !l.maxInFlight.CompareAndSwap(m, n); m = l.maxInFlight.Load() {
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			l.inFlight.Add(-1)
			l.mu.Lock()
			l.statuses[rec.status]++
			if len(l.answers) < maxAnswers {
				l.answers = append(l.answers, Answer{Start: start, At: time.Now(), Status: rec.status})
			}
			l.mu.Unlock()
		}()
		inner.ServeHTTP(rec, r)
	})}
	l.http.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			l.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			l.conns.Add(-1)
		}
	}
	go func() { _ = l.http.Serve(ln) }()
	return l, nil
}

// URL is the OpenAI base URL, http://host:port/v1.
func (l *LM) URL() string { return "http://" + l.ln.Addr().String() + "/v1" }

// Close stops the server at once, ending stalls.
func (l *LM) Close() error {
	return errors.Join(l.Server.Close(), l.http.Close())
}

// Statuses is how many chat calls were answered with each HTTP status.
func (l *LM) Statuses() map[int]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int]int64, len(l.statuses))
	for k, v := range l.statuses {
		out[k] = v
	}
	return out
}

// Calls is how many chat calls were answered, whatever the status.
func (l *LM) Calls() int64 {
	var n int64
	for _, v := range l.Statuses() {
		n += v
	}
	return n
}

// Answer is one chat call: when it came, when it was answered and with
// which status.
type Answer struct {
	Start, At time.Time
	Status    int
}

// Occupancy is, over [t0, t1], the mean number of calls in flight and the
// mean duration of the calls answered within it, from the answers: exact
// where sampling is not, even when calls end in waves. Calls still in flight
// are not among the answers: read them once every call that came before t1
// has been answered.
func Occupancy(answers []Answer, t0, t1 time.Time) (inFlight float64, meanCall time.Duration) {
	var busy, total time.Duration
	n := 0
	for _, a := range answers {
		if from, to := maxTime(a.Start, t0), minTime(a.At, t1); to.After(from) {
			busy += to.Sub(from)
		}
		if !a.At.Before(t0) && a.At.Before(t1) {
			total += a.At.Sub(a.Start)
			n++
		}
	}
	if !t1.After(t0) {
		return 0, 0
	}
	if n > 0 {
		meanCall = total / time.Duration(n)
	}
	return float64(busy) / float64(t1.Sub(t0)), meanCall
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// maxAnswers bounds the answer log.
const maxAnswers = 1 << 20

// Answers is the log of chat calls answered (the first million).
func (l *LM) Answers() []Answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Answer(nil), l.answers...)
}

// Uploaded is how many bytes were uploaded to the Files API (the multipart
// bodies of POST /v1/files, batch input files mostly).
func (l *LM) Uploaded() int64 { return l.uploaded.Load() }

// countingBody adds the bytes read from a request body to n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	k, err := b.ReadCloser.Read(p)
	b.n.Add(int64(k))
	return k, err
}

// Conns is how many client connections are open (idle keep-alives too).
func (l *LM) Conns() int64 { return l.conns.Load() }

// InFlight is how many chat calls are being answered now.
func (l *LM) InFlight() int64 { return l.inFlight.Load() }

// MaxInFlight is the most chat calls answered at once since ResetMax.
func (l *LM) MaxInFlight() int64 { return l.maxInFlight.Load() }

// ResetMax starts a new MaxInFlight window.
func (l *LM) ResetMax() { l.maxInFlight.Store(l.inFlight.Load()) }

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
