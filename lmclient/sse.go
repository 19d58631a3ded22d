package lmclient

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/tidwall/gjson"
)

// sseReader reads Server-Sent Events data payloads. openai-go's own stream
// decodes every chunk into ChatCompletionChunk through reflection, measured
// at ~40µs and ~60 allocations per token (BenchmarkStream); the client
// needs three fields of each chunk, read here with gjson (already used by
// openai-go) in about a microsecond.
type sseReader struct {
	r    *bufio.Reader
	data []byte
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 32<<10)}
}

// maxEventBytes bounds one event, as openai-go's scanner does (32 MiB).
const maxEventBytes = 32 << 20

// next returns the data of the next event (data lines joined by "\n"),
// skipping comments and other fields. io.EOF means the body ended cleanly
// between events.
func (s *sseReader) next() ([]byte, error) {
	s.data = s.data[:0]
	have := false
	for {
		line, err := s.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: gather it whole.
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull && len(long) < maxEventBytes {
				line, err = s.r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && (err != io.EOF || len(line) == 0) {
			if err == io.EOF && have {
				return s.data, nil
			}
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if have {
				return s.data, nil
			}
			continue
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		if string(name) == "data" {
			if have {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			have = true
			if len(s.data) > maxEventBytes {
				return nil, fmt.Errorf("read event: larger than %d bytes", maxEventBytes)
			}
		}
		if err == io.EOF {
			return s.data, nil
		}
	}
}

// chunkFields are what the client reads of one chat.completion.chunk.
type chunkFields struct {
	content, finish string
	hasFinish       bool
	usage           string // raw JSON; "" or "null" when absent
	errorRaw        string // raw "error" object of an error event
}

// parseChunk reads the fields of a valid chunk in one pass over its top
// level, as gjson paths ("choices.0.delta.content",
// "choices.0.finish_reason", "usage", "error") read them: the first of a
// repeated key counts. The chunk is copied to a string once, and the fields
// are slices of it. An invalid chunk is read path by path, as leniently as
// gjson reads it.
func parseChunk(data []byte) chunkFields {
	if !gjson.ValidBytes(data) {
		return parseChunkPaths(data)
	}
	var f chunkFields
	var choices, usage, errorRaw bool
	gjson.Parse(string(data)).ForEach(func(k, v gjson.Result) bool {
		switch {
		case k.Str == "choices" && !choices:
			choices = true
			first := v.Get("0")
			f.content = first.Get("delta.content").String()
			if fin := first.Get("finish_reason"); fin.Type == gjson.String {
				f.finish, f.hasFinish = fin.Str, true
			}
		case k.Str == "usage" && !usage:
			usage, f.usage = true, v.Raw
		case k.Str == "error" && !errorRaw:
			errorRaw, f.errorRaw = true, v.Raw
		}
		return true
	})
	return f
}

// parseChunkPaths reads the fields with one gjson path lookup each.
func parseChunkPaths(data []byte) chunkFields {
	r := gjson.GetManyBytes(data, "choices.0.delta.content", "choices.0.finish_reason", "usage", "error")
	f := chunkFields{content: r[0].String(), usage: r[2].Raw, errorRaw: r[3].Raw}
	if r[1].Type == gjson.String {
		f.finish, f.hasFinish = r[1].String(), true
	}
	return f
}
