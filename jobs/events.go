package jobs

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// EventType names an event. Token, retrying and started events are transient;
// completed, failed, cancelled and expired end a job's stream.
type EventType string

// Event types.
const (
	EventQueued    EventType = "queued"
	EventStarted   EventType = "started"
	EventToken     EventType = "token"
	EventRetrying  EventType = "retrying"
	EventCompleted EventType = "completed"
	EventFailed    EventType = "failed"
	EventCancelled EventType = "cancelled"
	EventExpired   EventType = "expired"
	// EventStageCompleted carries a finished stage's outputs (multi-stage
	// programs only).
	EventStageCompleted EventType = "stage_completed"
	// EventProgress carries a batch's counts; a batch's terminal event
	// (completed, cancelled, expired) carries them too.
	EventProgress EventType = "progress"
)

// Terminal reports whether t ends a job's event stream.
func (t EventType) Terminal() bool {
	switch t {
	case EventCompleted, EventFailed, EventCancelled, EventExpired:
		return true
	}
	return false
}

// Event is one entry of a job's event log. ID is the Redis stream id, the same
// in the stream and on the pub/sub channel, so a client resuming with
// Last-Event-ID can be given exactly what it missed.
type Event struct {
	ID   string          `json:"id"`
	Type EventType       `json:"type"`
	Data json.RawMessage `json:"data"`
	// Ended is set on a completed event's pub/sub message only (not in the
	// stream, never sent to clients): the record's fields the event leaves
	// out, so a wait answers from the event without reading the record.
	Ended *Ended `json:"ended,omitempty"`
}

// Ended is the end of a job's record as its completed event's message
// carries it (Event.Ended); times in Unix milliseconds, as the record
// holds them (0: unset).
type Ended struct {
	Attempts   int   `json:"attempts"`
	StartedAt  int64 `json:"started_at"`
	FinishedAt int64 `json:"finished_at"`
}

// ParseEvent decodes a pub/sub message published by the record script.
func ParseEvent(payload string) (Event, error) {
	if e, ok := parseEnvelope(payload); ok {
		return e, nil
	}
	var e Event
	if err := json.Unmarshal([]byte(payload), &e); err != nil {
		return e, fmt.Errorf("decode event: %w", err)
	}
	if e.ID == "" || e.Type == "" {
		return e, fmt.Errorf("decode event: missing id or type")
	}
	return e, nil
}

// parseEnvelope reads the message as the envelope template writes it,
// {"id":"…","type":"…","data":…} with plain id and type, or as
// ended_envelope does, with ,"ended":{…} of plain integers after the data,
// in one pass over the data (which must be valid JSON) and without
// reflection; ok is false for any other shape, which json.Unmarshal then
// reads.
func parseEnvelope(payload string) (e Event, ok bool) {
	rest, ok := strings.CutPrefix(payload, `{"id":"`)
	if !ok {
		return e, false
	}
	id, rest, ok := strings.Cut(rest, `","type":"`)
	if !ok || !plainJSONString(id) {
		return e, false
	}
	typ, rest, ok := strings.Cut(rest, `","data":`)
	if !ok || !plainJSONString(typ) {
		return e, false
	}
	data, ok := strings.CutSuffix(rest, "}")
	if !ok || id == "" || typ == "" {
		return e, false
	}
	var ended *Ended
	// The data is valid JSON on its own (checked below), so the last
	// ,"ended": cannot be inside it when what follows it reads as Ended.
	if i := strings.LastIndex(data, `,"ended":`); i >= 0 {
		if ended, ok = parseEnded(data[i+len(`,"ended":`):]); ok {
			data = data[:i]
		}
	}
	raw := []byte(strings.Trim(data, " \t\r\n")) // the value, as encoding/json keeps it
	if !json.Valid(raw) {
		return e, false
	}
	return Event{ID: id, Type: EventType(typ), Data: raw, Ended: ended}, true
}

// parseEnded reads ended_envelope's {"attempts":…,"started_at":…,
// "finished_at":…} with non-negative integers as the script writes them;
// ok is false for any other shape.
func parseEnded(s string) (e *Ended, ok bool) {
	var attempts, started, finished int64
	for _, f := range []struct {
		prefix string
		to     *int64
	}{{`{"attempts":`, &attempts}, {`,"started_at":`, &started}, {`,"finished_at":`, &finished}} {
		if s, ok = strings.CutPrefix(s, f.prefix); !ok {
			return nil, false
		}
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		if n == 0 || (n > 1 && s[0] == '0') { // JSON has no leading zeros
			return nil, false
		}
		v, err := strconv.ParseInt(s[:n], 10, 64)
		if err != nil || v > math.MaxInt {
			return nil, false
		}
		*f.to, s = v, s[n:]
	}
	if s != "}" {
		return nil, false
	}
	return &Ended{Attempts: int(attempts), StartedAt: started, FinishedAt: finished}, true
}

// plainJSONString reports whether s is the same inside JSON quotes as
// decoded: printable ASCII without quotes or backslashes.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// EventData is the data of one type of event. Each type renders itself with
// encoding/json, the bytes clients receive (testdata/events pins them); the
// scripts append what Go rendered, or fill in a Template rendered from the
// type.
type EventData interface {
	// EventType is the type of the event that carries the data.
	EventType() EventType
}

// The data of each event, one type per event.
type (
	// QueuedData is the data of a queued event.
	QueuedData struct {
		Queue string `json:"queue"`
	}
	// StartedData is the data of a started event. An attempt above 1 tells
	// clients to drop any partial answer they hold.
	StartedData struct {
		Attempt int `json:"attempt"`
	}
	// TokenData is the data of a token event: the next piece of an output
	// field of the current attempt. Stage names the stage of a multi-stage
	// program whose field it is; it is absent for a single-stage program,
	// whose token events keep their shape.
	TokenData struct {
		Attempt int    `json:"attempt"`
		Stage   string `json:"stage,omitempty"`
		Field   string `json:"field"`
		Content string `json:"content"`
	}
	// RetryingData is the data of a retrying event; clients drop the partial
	// answer. RetryInMS is 0 when the attempt goes on (the program started
	// over within it); Stage then names the multi-stage program's stage
	// that started over, and clients drop only that stage's partial text
	// (stages already completed stand). Without a Stage, every partial text
	// not in a stage_completed event goes.
	RetryingData struct {
		Attempt   int    `json:"attempt"`
		Stage     string `json:"stage,omitempty"`
		Reason    string `json:"reason"`
		RetryInMS int64  `json:"retry_in_ms"`
	}
	// StageCompletedData is the data of a stage_completed event: a stage of
	// a multi-stage program finished, and its outputs stand whatever
	// happens to the stages after it (a retry resumes after it).
	StageCompletedData struct {
		Stage   string  `json:"stage"`
		Outputs Outputs `json:"outputs"`
	}
	// CompletedData is the data of a completed event.
	CompletedData struct {
		Result *Result `json:"result"`
	}
	// FailedData is the data of a failed event.
	FailedData struct {
		Error    *Error `json:"error"`
		Attempts int    `json:"attempts"`
	}
	// ExpiredData is the data of an expired event: a failed event's shape.
	ExpiredData FailedData
	// CancelledData is the data of a cancelled event.
	CancelledData struct {
		Previous Status `json:"previous"`
	}
)

// EventType is EventQueued.
func (QueuedData) EventType() EventType { return EventQueued }

// EventType is EventStarted.
func (StartedData) EventType() EventType { return EventStarted }

// EventType is EventToken.
func (TokenData) EventType() EventType { return EventToken }

// EventType is EventRetrying.
func (RetryingData) EventType() EventType { return EventRetrying }

// EventType is EventStageCompleted.
func (StageCompletedData) EventType() EventType { return EventStageCompleted }

// EventType is EventCompleted.
func (CompletedData) EventType() EventType { return EventCompleted }

// EventType is EventFailed.
func (FailedData) EventType() EventType { return EventFailed }

// EventType is EventExpired.
func (ExpiredData) EventType() EventType { return EventExpired }

// EventType is EventCancelled.
func (CancelledData) EventType() EventType { return EventCancelled }

// CompareIDs orders two Redis stream ids ("ms-seq"): -1, 0 or 1. Malformed ids
// sort first.
func CompareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am < bm:
		return -1
	case am > bm:
		return 1
	case as < bs:
		return -1
	case as > bs:
		return 1
	}
	return 0
}

func splitID(id string) (ms, seq uint64) {
	var i int
	for i = 0; i < len(id) && id[i] != '-'; i++ {
		c := id[i]
		if c < '0' || c > '9' {
			return 0, 0
		}
		ms = ms*10 + uint64(c-'0')
	}
	for i++; i < len(id); i++ {
		c := id[i]
		if c < '0' || c > '9' {
			return 0, 0
		}
		seq = seq*10 + uint64(c-'0')
	}
	return ms, seq
}

// ValidID reports whether id is a Redis stream id ("ms-seq" or "ms") that a
// read can start after: each part a 64-bit number (Redis refuses more), and
// not the maximum id, after which Redis refuses to read (nothing can follow
// it).
func ValidID(id string) bool {
	msPart, seqPart, hasSeq := strings.Cut(id, "-")
	ms, err := strconv.ParseUint(msPart, 10, 64)
	if err != nil {
		return false
	}
	if !hasSeq {
		return true
	}
	seq, err := strconv.ParseUint(seqPart, 10, 64)
	return err == nil && (ms != math.MaxUint64 || seq != math.MaxUint64)
}
