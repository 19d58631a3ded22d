package jobs

import (
	"encoding/json"
	"strconv"
)

// ParseResult decodes a stored result as json.Unmarshal decodes it into a
// *Result (null: nil). A result as the worker writes it is read in one pass
// (scanResult), anything else through json.Unmarshal, whose errors it
// returns.
func ParseResult(data []byte) (*Result, error) {
	if json.Valid(data) {
		r := new(Result)
		if scanResult(data, r) {
			return r, nil
		}
	}
	var r *Result
	err := json.Unmarshal(data, &r)
	return r, err
}

// ParseCompleted decodes a completed event's data as json.Unmarshal does,
// its result as ParseResult reads it.
func ParseCompleted(data []byte) (CompletedData, error) {
	if json.Valid(data) {
		var d CompletedData
		if eachField(data, func(key, raw []byte) bool {
			if string(key) != `"result"` || raw[0] != '{' {
				return false
			}
			if d.Result == nil { // a repeated key adds to the first's, as in encoding/json
				d.Result = new(Result)
			}
			return scanResult(raw, d.Result)
		}) {
			return d, nil
		}
	}
	var d CompletedData
	err := json.Unmarshal(data, &d)
	return d, err
}

// scanResult reads a valid result object into r in one pass, as
// encoding/json would (a field set twice holds the second): outputs as
// Outputs reads them, the rest directly. It is false for
// anything the worker does not write (a key spelled otherwise, a null, a
// number of another form, the stages of a multi-stage run), which
// json.Unmarshal then reads.
func scanResult(data []byte, r *Result) bool {
	return eachField(data, func(key, raw []byte) bool {
		switch string(key) {
		case `"outputs"`:
			return raw[0] == '{' && r.Outputs.UnmarshalJSON(raw) == nil
		case `"provenance"`:
			return scanProvenance(raw, &r.Provenance)
		case `"usage"`:
			if raw[0] == 'n' {
				return false
			}
			r.Usage = append(r.Usage[:0], raw...)
			return true
		case `"latency_seconds"`:
			return scanFloat(raw, &r.LatencySeconds)
		}
		return false
	})
}

// scanProvenance reads a provenance object into p.
func scanProvenance(raw []byte, p *Provenance) bool {
	return eachField(raw, func(key, raw []byte) bool {
		switch string(key) {
		case `"model"`:
			return scanString(raw, &p.Model)
		case `"program_state_sha256"`:
			return scanString(raw, &p.StateSHA256)
		case `"cache_hit"`:
			return scanBool(raw, &p.CacheHit)
		case `"attempts"`:
			return scanInt(raw, &p.Attempts)
		case `"lm_calls"`:
			return scanInt(raw, &p.LMCalls)
		case `"program"`:
			return scanString(raw, &p.Program)
		case `"program_version"`:
			return scanString(raw, &p.ProgramVersion)
		}
		return false
	})
}

// scanBool reads a true or false literal into dst.
func scanBool(raw []byte, dst *bool) bool {
	switch string(raw) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return false
	}
	return true
}

// scanInt reads an integer literal into dst as encoding/json does.
func scanInt(raw []byte, dst *int) bool {
	n, err := strconv.ParseInt(string(raw), 10, strconv.IntSize)
	*dst = int(n)
	return err == nil
}

// scanFloat reads a number literal into dst as encoding/json does.
func scanFloat(raw []byte, dst *float64) bool {
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	*dst = f
	return err == nil
}
