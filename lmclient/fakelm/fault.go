package fakelm

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FaultKind says how a request is answered badly.
type FaultKind int

// Fault kinds.
const (
	// FaultNone answers normally.
	FaultNone FaultKind = iota
	// FaultStatus answers with an OpenAI-style error body and Fault.Status.
	FaultStatus
	// FaultContextWindow answers 400 with code context_length_exceeded.
	FaultContextWindow
	// FaultStall holds the request without a byte of answer for Fault.For, or
	// until the client hangs up or the server closes when For is zero.
	FaultStall
	// FaultGarbage answers prose without any field markers or JSON.
	FaultGarbage
	// FaultTruncate cuts the connection after Fault.After content chunks
	// (streaming) or mid-body (JSON).
	FaultTruncate
)

// Fault is one injected failure.
type Fault struct {
	Kind FaultKind
	// Status is the HTTP status of a FaultStatus (default 500).
	Status int
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up) and retry-after-ms. A 429 without it gets 1s.
	RetryAfter time.Duration
	// For is how long a FaultStall lasts; zero stalls until the client gives up.
	For time.Duration
	// After is how many content chunks a truncated stream sends before the cut.
	After int
}

// Status429 is a 429 with the given Retry-After.
func Status429(retryAfter time.Duration) Fault {
	return Fault{Kind: FaultStatus, Status: 429, RetryAfter: retryAfter}
}

// Status500 is a plain 500.
func Status500() Fault { return Fault{Kind: FaultStatus, Status: 500} }

// directive is a fault requested from the message text.
type directive struct {
	fault Fault
	// times limits the fault to the first N requests with the same messages;
	// 0 means every request.
	times int
}

const directivePrefix = "[[fakelm:"

// parseDirective finds the first [[fakelm:…]] directive in s. ok is false
// when there is none; err reports a malformed one.
func parseDirective(s string) (d directive, ok bool, err error) {
	i := strings.Index(s, directivePrefix)
	if i < 0 {
		return directive{}, false, nil
	}
	rest := s[i+len(directivePrefix):]
	j := strings.Index(rest, "]]")
	if j < 0 {
		return directive{}, true, fmt.Errorf("parse directive: missing ]]")
	}
	parts := strings.Split(rest[:j], ",")
	kind := strings.TrimSpace(parts[0])
	switch kind {
	case "context":
		d.fault = Fault{Kind: FaultContextWindow}
	case "stall":
		d.fault = Fault{Kind: FaultStall}
	case "garbage":
		d.fault = Fault{Kind: FaultGarbage}
	case "truncate":
		d.fault = Fault{Kind: FaultTruncate, After: 2}
	default:
		code, err := strconv.Atoi(kind)
		if err != nil || code < 400 || code > 599 {
			return directive{}, true, fmt.Errorf("parse directive: unknown kind %q", kind)
		}
		d.fault = Fault{Kind: FaultStatus, Status: code}
	}
	for _, p := range parts[1:] {
		k, v, found := strings.Cut(strings.TrimSpace(p), "=")
		if !found {
			return directive{}, true, fmt.Errorf("parse directive: option %q is not key=value", p)
		}
		switch k {
		case "retry_after", "for":
			dur, err := time.ParseDuration(v)
			if err != nil || dur < 0 {
				return directive{}, true, fmt.Errorf("parse directive: bad %s %q", k, v)
			}
			if k == "for" {
				d.fault.For = dur
			} else {
				d.fault.RetryAfter = dur
			}
		case "times", "after":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return directive{}, true, fmt.Errorf("parse directive: bad %s %q", k, v)
			}
			if k == "times" {
				d.times = n
			} else {
				d.fault.After = n
			}
		default:
			return directive{}, true, fmt.Errorf("parse directive: unknown option %q", k)
		}
	}
	return d, true, nil
}
