package jobs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Event templates: how Go renders the data of an event whose values only the
// script appending it knows (the attempt a start begins, the status a cancel
// ended, a batch's counts, the stream id of the event).
//
// Go renders the event's type with a placeholder in each such place, once,
// and hands the text to the scripts (package store prepends it to them); the
// script fills in the values (fill, in store/events.lua) and appends and
// publishes the result. Everything else about the bytes is Go's.
//
// A placeholder is a control byte, the value's name, and the same byte
// again:
//
//	\x01name\x01  an integer, written as digits
//	\x02name\x02  a string of letters, digits, '_' and '-', written in quotes
//	\x03name\x03  JSON the script was given by Go, written as it is
//
// encoding/json writes no control byte outside a string and escapes every
// one inside, so a placeholder cannot occur in JSON it rendered, and the
// text around the placeholders is exactly what it renders for the type.
// Template.Render is that rendering with values in place; a test in store
// checks that the script's fill writes the same bytes.
type Template struct {
	// Name is how the scripts refer to it (T.name).
	Name string
	// Text is the data with placeholders.
	Text  string
	build func(Fields) any
}

// Fields gives a template's builder the value of each placeholder.
type Fields interface {
	Int(name string) int
	String(name string) string
	JSON(name string) json.RawMessage
}

// Values are what a template's placeholders stand for: an int, a string or
// a json.RawMessage by name.
type Values map[string]any

// Int is the int named name (0 if absent).
func (v Values) Int(name string) int { n, _ := v[name].(int); return n }

// String is the string named name ("" if absent).
func (v Values) String(name string) string { s, _ := v[name].(string); return s }

// JSON is the JSON named name (null if absent).
func (v Values) JSON(name string) json.RawMessage {
	if r, ok := v[name].(json.RawMessage); ok {
		return r
	}
	return json.RawMessage("null")
}

// Render is the Go rendering of the template's type with values in its
// placeholders: what the script's fill must write.
func (t Template) Render(values Values) ([]byte, error) {
	b, err := json.Marshal(t.build(values))
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", t.Name, err)
	}
	return b, nil
}

// Templates are the event templates the scripts fill in.
func Templates() []Template { return templates }

var templates = []Template{
	newTemplate("started", func(f Fields) any { return StartedData{Attempt: f.Int("attempt")} }),
	newTemplate("cancelled", func(f Fields) any { return CancelledData{Previous: Status(f.String("previous"))} }),
	// The attempt a lost worker was running, put back by a recoverer.
	// RetryingData, whose reason Go encoded (it names the worker).
	newTemplate("lost", func(f Fields) any {
		return struct {
			Attempt   int             `json:"attempt"`
			Reason    json.RawMessage `json:"reason"`
			RetryInMS int64           `json:"retry_in_ms"`
		}{f.Int("attempt"), f.JSON("reason"), 0}
	}),
	// CompletedData around the result as Go encoded it once: the record
	// script stores those bytes and sends them in the event.
	newTemplate("completed", func(f Fields) any {
		return struct {
			Result json.RawMessage `json:"result"`
		}{f.JSON("result")}
	}),
	newTemplate("batch_progress", func(f Fields) any {
		return BatchProgress{Status: BatchStatus(f.String("status")), RequestCounts: BatchCounts{
			Total: f.Int("total"), Completed: f.Int("completed"), Failed: f.Int("failed"), Cancelled: f.Int("cancelled"),
		}}
	}),
	// batch_progress with the provider object of a provider-mode batch
	// (BatchProgress.Provider), as Go encoded it.
	newTemplate("batch_provider_progress", func(f Fields) any {
		return struct {
			Status        BatchStatus     `json:"status"`
			RequestCounts BatchCounts     `json:"request_counts"`
			Provider      json.RawMessage `json:"provider"`
		}{BatchStatus(f.String("status")), BatchCounts{
			Total: f.Int("total"), Completed: f.Int("completed"), Failed: f.Int("failed"), Cancelled: f.Int("cancelled"),
		}, f.JSON("provider")}
	}),
	// The message on a job's or a batch's channel: the event with its
	// stream id (ParseEvent reads it).
	newTemplate("envelope", func(f Fields) any {
		return Event{ID: f.String("id"), Type: EventType(f.String("type")), Data: f.JSON("data")}
	}),
	// The message of a completed event, with the record's end (Ended).
	newTemplate("ended_envelope", func(f Fields) any {
		return Event{ID: f.String("id"), Type: EventType(f.String("type")), Data: f.JSON("data"), Ended: &Ended{
			Attempts: f.Int("attempts"), StartedAt: int64(f.Int("started_at")), FinishedAt: int64(f.Int("finished_at")),
		}}
	}),
}

// newTemplate renders build's value with a sentinel in each placeholder's
// place, then puts the placeholders where the sentinels' JSON is. A
// sentinel that is not found exactly once is a bug in the template: it
// panics, which every test of the package sees.
func newTemplate(name string, build func(Fields) any) Template {
	s := &sentinels{}
	b, err := json.Marshal(build(s))
	if err != nil {
		panic(fmt.Sprintf("jobs: template %s: %v", name, err))
	}
	text := string(b)
	for _, h := range s.holes {
		if n := strings.Count(text, h.sentinel); n != 1 {
			panic(fmt.Sprintf("jobs: template %s: %s appears %d times", name, h.sentinel, n))
		}
		text = strings.Replace(text, h.sentinel, h.placeholder, 1)
	}
	return Template{Name: name, Text: text, build: build}
}

// sentinels hands out values that render to JSON found nowhere else in a
// template: numbers of 10 digits, and strings no event holds.
type sentinels struct {
	holes []struct{ sentinel, placeholder string }
}

func (s *sentinels) add(sentinel string, kind byte, name string) {
	s.holes = append(s.holes, struct{ sentinel, placeholder string }{sentinel, string(kind) + name + string(kind)})
}

func (s *sentinels) Int(name string) int {
	n := 1_900_000_001 + len(s.holes)
	s.add(strconv.Itoa(n), '\x01', name)
	return n
}

func (s *sentinels) String(name string) string {
	v := "qaqueue:template:string:" + name
	s.add(strconv.Quote(v), '\x02', name)
	return v
}

func (s *sentinels) JSON(name string) json.RawMessage {
	v := strconv.Quote("qaqueue:template:json:" + name)
	s.add(v, '\x03', name)
	return json.RawMessage(v)
}
