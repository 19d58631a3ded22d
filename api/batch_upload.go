package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
)

// Limits on batch uploads in progress: how many at once, and how slowly
// their bodies may arrive.

// uploadLeasesKey holds the leases of one caller's uploads in progress.
func uploadLeasesKey(who string) string { return "qa:uploads:" + who }

// admitUpload holds uploads to Config.BatchUploadsPerProcess in this
// process and Config.BatchUploadsPerKey per caller across every replica (a
// lease, as for streams); beyond, a 429 with Retry-After. The caller must
// call release when the upload is done.
func (h *batchHandlers) admitUpload(c *gin.Context) (release func(), err error) {
	s := h.s
	select {
	case h.uploads <- struct{}{}:
	default:
		return nil, s.tooMany("too_many_uploads",
			fmt.Sprintf("this server is reading %d batch uploads, its BATCH_UPLOADS_PER_PROCESS; retry shortly", cap(h.uploads)))
	}
	l, ok, err := s.acquireLease(c.Request.Context(), uploadLeasesKey(caller(c)), s.cfg.BatchUploadsPerKey)
	switch {
	case err != nil:
		<-h.uploads
		return nil, fmt.Errorf("count uploads in progress: %w", err)
	case !ok:
		<-h.uploads
		return nil, s.tooMany("too_many_uploads",
			fmt.Sprintf("this key already has %d batch uploads in progress, its BATCH_UPLOADS_PER_KEY; send the next when one has been answered", s.cfg.BatchUploadsPerKey))
	}
	return func() {
		<-h.uploads
		l.release()
	}, nil
}

// errUploadTooSlow is an upload that fell behind BATCH_UPLOAD_MIN_RATE.
var errUploadTooSlow = errors.New("upload slower than BATCH_UPLOAD_MIN_RATE")

// uploadBody reads an upload under a read deadline that moves with the
// bytes received: grace, plus the time the bytes so far take at rate bytes
// per second. It replaces the server's bounded body read time
// (defaultDeadline) for uploads, which a large one on a slow link would exceed. An upload that
// falls further behind ends with errUploadTooSlow.
type uploadBody struct {
	r     io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  int64
	n     int64
}

func newUploadBody(c *gin.Context, grace time.Duration, rate int64) *uploadBody {
	u := &uploadBody{r: c.Request.Body, rc: http.NewResponseController(c.Writer), start: time.Now(), grace: grace, rate: rate}
	u.extend()
	return u
}

func (u *uploadBody) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	u.n += int64(n)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, errUploadTooSlow
	case err == nil:
		// Not after the last read: the server then reads ahead for the next
		// request, and a deadline there would cancel this one.
		u.extend()
	}
	return n, err
}

func (u *uploadBody) Close() error { return u.r.Close() }

func (u *uploadBody) extend() {
	earned := time.Duration(float64(u.n) / float64(u.rate) * float64(time.Second))
	_ = u.rc.SetReadDeadline(u.start.Add(u.grace + earned))
}

// uploadTTL bounds the keys of an upload in progress (batches.UploadRequest.TTL):
// the longest an upload of BATCH_MAX_BYTES may take at the minimum rate, and
// its commit.
func (s *Server) uploadTTL() time.Duration {
	return s.cfg.BatchUploadGrace + time.Duration(float64(s.cfg.BatchMaxBytes)/float64(s.cfg.BatchUploadMinRate)*float64(time.Second)) + batchCreateTimeout
}
