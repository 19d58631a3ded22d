package fakelm

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// blobChunk is the size of a blob's chunks: a large upload grows by whole
// chunks rather than by doubling (and copying) one slice.
const blobChunk = 1 << 20

// blob is a file's bytes, written once, then read any number of times.
type blob struct {
	chunks [][]byte
	size   int64
}

// Write appends p.
func (b *blob) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(b.chunks) == 0 || len(b.chunks[len(b.chunks)-1]) == blobChunk {
			b.chunks = append(b.chunks, make([]byte, 0, min(blobChunk, max(len(p), 4<<10))))
		}
		last := &b.chunks[len(b.chunks)-1]
		if cap(*last) < blobChunk && len(*last)+len(p) > cap(*last) {
			grown := make([]byte, len(*last), min(blobChunk, 2*(len(*last)+len(p))))
			copy(grown, *last)
			*last = grown
		}
		k := min(len(p), blobChunk-len(*last))
		*last = append(*last, p[:k]...)
		p = p[k:]
		b.size += int64(k)
	}
	return n, nil
}

// reader reads the blob from its start.
func (b *blob) reader() io.Reader {
	rs := make([]io.Reader, len(b.chunks))
	for i, c := range b.chunks {
		rs[i] = bytes.NewReader(c)
	}
	return io.MultiReader(rs...)
}

// lineReader reads a blob's lines without their line ending.
type lineReader struct {
	br  *bufio.Reader
	buf []byte
	n   int // lines read
}

func newLineReader(b *blob) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(b.reader(), 64<<10)}
}

// next returns the next line, valid until the following call, or io.EOF.
func (l *lineReader) next() ([]byte, error) {
	l.buf = l.buf[:0]
	for {
		chunk, err := l.br.ReadSlice('\n')
		l.buf = append(l.buf, chunk...)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(l.buf) > 0, err == nil:
			l.n++
			return bytes.TrimRight(l.buf, "\r\n"), nil
		default:
			return nil, err
		}
	}
}

// file is a stored file.
type file struct {
	id, filename, purpose string
	createdAt             time.Time
	data                  *blob
}

// fileObject is OpenAI's File object.
type fileObject struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int64   `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	ExpiresAt     *int64  `json:"expires_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details"`
}

func (f *file) object() fileObject {
	return fileObject{ID: f.id, Object: "file", Bytes: f.data.size, CreatedAt: f.createdAt.Unix(),
		Filename: f.filename, Purpose: f.purpose, Status: "processed"}
}

// newID is an OpenAI-style object id with the given prefix.
func newID(prefix string) string { return prefix + rand.Text() }

// createFile stores a multipart upload (purpose=batch, file), reading the
// file part as a stream into the store and refusing it past the size limit.
func (s *Server) createFile(w http.ResponseWriter, r *http.Request) {
	mr, err := r.MultipartReader()
	if err != nil {
		writeParamError(w, http.StatusBadRequest, Fault{}, "The request must be multipart/form-data with a file.", "invalid_request_error", "", "file")
		return
	}
	s.p.mu.Lock()
	limit := min(s.p.cfg.MaxFileBytes, s.p.cfg.MaxStoredBytes-s.p.stored)
	s.p.mu.Unlock()
	var purpose, filename string
	var data *blob
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			writeParamError(w, http.StatusBadRequest, Fault{}, "read upload: "+err.Error(), "invalid_request_error", "", "file")
			return
		}
		switch part.FormName() {
		case "purpose":
			b, _ := io.ReadAll(io.LimitReader(part, 64))
			purpose = string(b)
		case "file":
			if data != nil {
				writeParamError(w, http.StatusBadRequest, Fault{}, "The request must carry exactly one file.", "invalid_request_error", "", "file")
				return
			}
			filename = part.FileName()
			data = &blob{}
			if _, err := io.Copy(data, io.LimitReader(part, limit+1)); err != nil {
				// A body cut short or malformed; a client that went away
				// never reads this answer.
				writeParamError(w, http.StatusBadRequest, Fault{}, "read upload: "+err.Error(), "invalid_request_error", "", "file")
				return
			}
			if data.size > limit {
				s.tooLarge(w)
				return
			}
		default:
			_, _ = io.Copy(io.Discard, part) // expires_after and the like
		}
	}
	if purpose != "batch" {
		writeParamError(w, http.StatusBadRequest, Fault{}, fmt.Sprintf("'%s' is not a purpose fakelm keeps: it keeps only 'batch' files.", purpose), "invalid_request_error", "", "purpose")
		return
	}
	if data == nil || filename == "" {
		writeParamError(w, http.StatusBadRequest, Fault{}, "A file with a filename is required.", "invalid_request_error", "", "file")
		return
	}
	f, err := s.storeFile(filename, purpose, data)
	if err != nil {
		s.tooLarge(w)
		return
	}
	writeJSON(w, f.object())
}

// errStoreFull is a store at one of its caps.
var errStoreFull = errors.New("store file: the fake's store is full")

// storeFile keeps an upload within MaxFiles and MaxStoredBytes.
func (s *Server) storeFile(filename, purpose string, data *blob) (*file, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if s.p.uploads >= s.p.cfg.MaxFiles || s.p.stored+data.size > s.p.cfg.MaxStoredBytes {
		return nil, errStoreFull
	}
	f := &file{id: newID("file-"), filename: filename, purpose: purpose, createdAt: s.now(), data: data}
	s.p.files[f.id] = f
	s.p.fileOrder = append(s.p.fileOrder, f.id)
	s.p.stored += data.size
	s.p.uploads++
	return f, nil
}

func (s *Server) tooLarge(w http.ResponseWriter) {
	s.p.mu.Lock()
	cfg := s.p.cfg
	s.p.mu.Unlock()
	writeParamError(w, http.StatusRequestEntityTooLarge, Fault{},
		fmt.Sprintf("File is too large or the store is full: fakelm keeps files up to %d bytes (BatchConfig.MaxFileBytes, qa fakelm -files-max-bytes), at most %d files (MaxFiles) and %d bytes in all (MaxStoredBytes).",
			cfg.MaxFileBytes, cfg.MaxFiles, cfg.MaxStoredBytes),
		"invalid_request_error", "file_too_large", "file")
}

// file looks a file up, answering 404 when it is unknown.
func (s *Server) file(w http.ResponseWriter, id string) (*file, bool) {
	s.p.mu.Lock()
	f := s.p.files[id]
	s.p.mu.Unlock()
	if f == nil {
		writeParamError(w, http.StatusNotFound, Fault{}, "No such File object: "+id, "invalid_request_error", "", "id")
		return nil, false
	}
	return f, true
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	if f, ok := s.file(w, r.PathValue("id")); ok {
		writeJSON(w, f.object())
	}
}

// fileContent streams a file's bytes.
func (s *Server) fileContent(w http.ResponseWriter, r *http.Request) {
	f, ok := s.file(w, r.PathValue("id"))
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(f.data.size, 10))
	_, _ = io.Copy(w, f.data.reader())
}

func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request) {
	f, ok := s.file(w, r.PathValue("id"))
	if !ok {
		return
	}
	s.p.mu.Lock()
	if s.p.files[f.id] == f {
		delete(s.p.files, f.id)
		s.p.fileOrder = without(s.p.fileOrder, f.id)
		if f.purpose == "batch" {
			s.p.stored -= f.data.size
			s.p.uploads--
		}
	}
	s.p.mu.Unlock()
	writeJSON(w, map[string]any{"id": f.id, "object": "file", "deleted": true})
}

// listFiles answers GET /v1/files: purpose filter, order (default desc by
// creation) and an after cursor, limit 1-10,000 (default 10,000).
func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := listLimit(w, q.Get("limit"), 10000, 10000)
	if !ok {
		return
	}
	order := q.Get("order")
	if order != "" && order != "asc" && order != "desc" {
		writeParamError(w, http.StatusBadRequest, Fault{}, "order must be 'asc' or 'desc'.", "invalid_request_error", "", "order")
		return
	}
	purpose := q.Get("purpose")
	s.p.mu.Lock()
	ids := make([]string, 0, len(s.p.fileOrder))
	for _, id := range s.p.fileOrder {
		if purpose == "" || s.p.files[id].purpose == purpose {
			ids = append(ids, id)
		}
	}
	if order != "asc" {
		reverse(ids)
	}
	page, more := pageAfter(ids, q.Get("after"), limit)
	data := make([]fileObject, len(page))
	for i, id := range page {
		data[i] = s.p.files[id].object()
	}
	s.p.mu.Unlock()
	writeJSON(w, listObject(data, page, more))
}

// listLimit reads a list's limit query parameter within [1, most].
func listLimit(w http.ResponseWriter, v string, def, most int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		writeParamError(w, http.StatusBadRequest, Fault{}, fmt.Sprintf("limit must be an integer from 1 to %d.", most), "invalid_request_error", "", "limit")
		return 0, false
	}
	return n, true
}

// pageAfter is the page of ids after the cursor id (from the first when
// after is ""; empty when the cursor is unknown), at most limit long.
func pageAfter(ids []string, after string, limit int) (page []string, more bool) {
	if after != "" {
		i := 0
		for i < len(ids) && ids[i] != after {
			i++
		}
		if i == len(ids) {
			return nil, false
		}
		ids = ids[i+1:]
	}
	if len(ids) > limit {
		return ids[:limit], true
	}
	return ids, false
}

// listObject is OpenAI's cursor page.
func listObject[T any](data []T, ids []string, more bool) map[string]any {
	var first, last any
	if len(ids) > 0 {
		first, last = ids[0], ids[len(ids)-1]
	}
	return map[string]any{"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}
}

func reverse(ids []string) {
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
}

// without is ids less id, in place.
func without(ids []string, id string) []string {
	for i, v := range ids {
		if v == id {
			return append(ids[:i], ids[i+1:]...)
		}
	}
	return ids
}

func writeJSON(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
