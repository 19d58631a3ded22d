package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
)

// Request decoders. Each returns either a value or an *apiError (or an
// *http.MaxBytesError from the body reader); none may panic on any input.
// Fuzz targets in fuzz_test.go hold them to that. A job's body is decoded
// by the one decoder of a spec's client part (bodyForm.decode, spec.go).

// readBody reads a whole body, at most limit bytes (a longer one gives an
// *http.MaxBytesError, answered 413).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, &apiError{status: http.StatusBadRequest, code: "bad_body", message: "could not read the request body", cause: err}
	}
	return body, nil
}

// parseJSON decodes body into a generic value and reports malformed JSON the
// way FastAPI does: 422 with type json_invalid.
func parseJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	if err == nil {
		end := int(dec.InputOffset())
		if rest := bytes.TrimLeft(body[end:], " \t\r\n"); len(rest) > 0 {
			err = fmt.Errorf("unexpected data after the JSON value at offset %d", len(body)-len(rest))
		}
	}
	if err != nil {
		pos := int64(0)
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			pos = se.Offset
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			pos = int64(len(body))
			if len(bytes.TrimSpace(body)) == 0 {
				return nil, validationError(fieldError{Loc: []any{"body"}, Msg: requiredMsg, Type: "missing"})
			}
			err = errors.New("unexpected end of JSON input")
		}
		return nil, validationError(fieldError{
			Loc: []any{"body", pos}, Msg: "JSON decode error", Type: "json_invalid",
			Ctx: map[string]any{"error": err.Error()},
		})
	}
	return v, nil
}

// parseObject is parseJSON for a body that must be an object: an empty body
// stands for {}, so the answer names the missing field (question) rather
// than the body.
func parseObject(body []byte) (any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]any{}, nil
	}
	return parseJSON(body)
}

// object checks that v is a JSON object.
func object(v any, loc []any) (map[string]any, *fieldError) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &fieldError{Loc: loc, Msg: "Input should be a valid dictionary or object to extract fields from", Type: "model_attributes_type"}
	}
	return m, nil
}

// decodeSpecBody decodes a body that is one JSON object into the client part
// of a job's spec, by form (see spec.go), and returns it with its program's
// version; the options it does not set keep their values in defaults.
func decodeSpecBody(body []byte, form bodyForm, rules specRules, defaults jobs.Options) (jobs.ClientSpec, string, error) {
	v, err := parseObject(body)
	if err != nil {
		return jobs.ClientSpec{}, "", err
	}
	m, fe := object(v, []any{"body"})
	if fe != nil {
		return jobs.ClientSpec{}, "", validationError(*fe)
	}
	c, version, err := form.decode(m, rules, defaults)
	var be *bodyError
	if errors.As(err, &be) {
		return c, "", validationError(be.fieldError([]any{"body"}))
	}
	return c, version, err
}

// decodeJobRequest decodes and validates a POST /v1/jobs body, the spec's
// own or the short form (jobForm). Unknown fields are refused, so a typo is
// not silently ignored.
func decodeJobRequest(body []byte, rules specRules, defaults jobs.Options) (jobs.ClientSpec, string, error) {
	return decodeSpecBody(body, jobForm, rules, defaults)
}

// decodePredictRequest decodes a /predict body as the seed's pydantic model
// did (seedForm): extra fields are ignored.
func decodePredictRequest(body []byte, rules specRules) (jobs.ClientSpec, string, error) {
	return decodeSpecBody(body, seedForm, rules, jobs.Options{})
}

// decodeBatchRequest decodes a POST /batch body: a list of at most maxItems
// {"question"} objects (seedForm), and returns them with the version of qa
// they run. Every item's failures are reported, as pydantic does.
func decodeBatchRequest(body []byte, rules specRules, maxItems int) ([]jobs.ClientSpec, string, error) {
	v, err := parseJSON(body)
	if err != nil {
		return nil, "", err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, "", validationError(fieldError{Loc: []any{"body"}, Msg: "Input should be a valid list", Type: "list_type"})
	}
	if len(list) > maxItems {
		return nil, "", validationError(fieldError{Loc: []any{"body"},
			Msg:  fmt.Sprintf("List should have at most %d items after validation, not %d", maxItems, len(list)),
			Type: "too_long", Ctx: map[string]any{"field_type": "List", "max_length": maxItems, "actual_length": len(list)}})
	}
	// Every item runs qa: resolved once, for all of them.
	qa, err := rules.program(jobs.ProgramQA)
	if err != nil {
		return nil, "", err
	}
	rules.batch = &qa
	out := make([]jobs.ClientSpec, len(list))
	var fields []fieldError
	for i, item := range list {
		loc := []any{"body", i}
		m, fe := object(item, loc)
		if fe == nil {
			var err error
			out[i], _, err = seedForm.decode(m, rules, jobs.Options{})
			var be *bodyError
			switch {
			case errors.As(err, &be):
				f := be.fieldError(loc)
				fe = &f
			case err != nil:
				return nil, "", err
			}
		}
		if fe != nil {
			fields = append(fields, *fe)
			if len(fields) == 20 {
				break // enough to fix the request
			}
		}
	}
	if len(fields) > 0 {
		return nil, "", validationError(fields...)
	}
	return out, qa.version, nil
}

// parseJobID validates a job id: 32 lowercase hex characters, as
// jobs.NewJobID makes them. Anything else is a 404 without asking Redis.
func parseJobID(id string) (string, error) {
	if len(id) != 32 {
		return "", errNotFound("job")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", errNotFound("job")
		}
	}
	return id, nil
}

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 255

// parseIdempotencyKey validates an Idempotency-Key header: empty (none), or
// 1..255 visible ASCII characters.
func parseIdempotencyKey(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	bad := len(v) > maxIdempotencyKey
	for i := 0; i < len(v) && !bad; i++ {
		bad = v[i] < 0x20 || v[i] > 0x7e
	}
	if bad || strings.TrimSpace(v) == "" {
		return "", &apiError{status: http.StatusBadRequest, code: "invalid_idempotency_key", field: "Idempotency-Key",
			message: fmt.Sprintf("Idempotency-Key must be 1 to %d printable ASCII characters", maxIdempotencyKey)}
	}
	return v, nil
}

// parseLastEventID validates a resume id from the Last-Event-ID header or the
// last_event_id query parameter: empty (from the start), or a stream id.
func parseLastEventID(header, query string) (string, error) {
	v := strings.TrimSpace(header)
	field := "Last-Event-ID"
	if v == "" {
		v, field = strings.TrimSpace(query), "last_event_id"
	}
	if v == "" {
		return "", nil
	}
	if !jobs.ValidID(v) {
		return "", &apiError{status: http.StatusBadRequest, code: "invalid_last_event_id", field: field,
			message: field + " must be an event id as sent in an id: line (\"<ms>-<seq>\")"}
	}
	return v, nil
}

// parseWait reads ?wait= as a Go duration ("30s") or whole seconds ("30"),
// capped at max.
func parseWait(v string, max time.Duration) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	bad := func(what string) error {
		return &apiError{status: http.StatusUnprocessableEntity, code: "validation_error", field: "wait",
			message: fmt.Sprintf("wait must %s (at most %gs; a longer wait is shortened to it)", what, max.Seconds())}
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseFloat(v, 64)
		if nerr != nil || n != n {
			return 0, bad("be a duration such as 30s, or a number of seconds")
		}
		if n < 0 {
			return 0, bad("not be negative")
		}
		if n > max.Seconds() {
			return max, nil
		}
		d = time.Duration(n * float64(time.Second))
	}
	if d < 0 {
		return 0, bad("not be negative")
	}
	return min(d, max), nil
}
