package api

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// monitoringRoot is where asynqmon is mounted. It must equal the path the
// browser sees (asynqmon wants the full, unstripped path).
const monitoringRoot = "/monitoring"

// newMonitor builds the asynqmon dashboard. It opens two Redis pools of its
// own; Shutdown closes them.
func newMonitor(opt asynq.RedisConnOpt, readOnly bool, limit int, prometheusURL string) *asynqmon.HTTPHandler {
	return asynqmon.New(asynqmon.Options{
		RootPath:          monitoringRoot,
		RedisConnOpt:      opt,
		ReadOnly:          readOnly,
		PrometheusAddress: prometheusURL,
		PayloadFormatter:  asynqmon.PayloadFormatterFunc(func(taskType string, payload []byte) string { return formatPayload(taskType, payload, limit) }),
		ResultFormatter:   asynqmon.ResultFormatterFunc(func(taskType string, result []byte) string { return formatResult(taskType, result, limit) }),
	})
}

// connOptFrom derives asynqmon's connection from a go-redis client.
func connOptFrom(rdb redis.UniversalClient) asynq.RedisConnOpt {
	c, ok := rdb.(*redis.Client)
	if !ok {
		return nil
	}
	o := c.Options()
	return asynq.RedisClientOpt{
		Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolSize: 4, TLSConfig: o.TLSConfig,
	}
}

// formatPayload shows a task's question readably, cut to limit bytes.
func formatPayload(taskType string, payload []byte, limit int) string {
	if v, ok := formatBatchPayload(taskType, payload); ok {
		return v // batch items: batch id and custom_id (batch_stream.go)
	}
	if taskType != jobs.TaskTypePredict {
		return truncate(printable(string(payload)), limit)
	}
	p, err := jobs.ParsePayload(payload)
	if err != nil {
		return "unreadable payload: " + truncate(printable(string(payload)), 200)
	}
	view := map[string]any{"job_id": p.JobID, "question": truncate(printable(p.Question), limit)}
	if p.Owner != "" {
		view["owner"] = p.Owner
	}
	if p.Stream {
		view["stream"] = true
	}
	if p.NoCache {
		view["no_cache"] = true
	}
	if p.Batch != nil {
		view["batch"] = p.Batch
	}
	return indent(view)
}

// formatResult shows a task result: the answer (and its short fields)
// readably, cut to limit bytes.
func formatResult(_ string, result []byte, limit int) string {
	if len(result) == 0 {
		return ""
	}
	var r jobs.Result
	if err := json.Unmarshal(result, &r); err != nil || r.Outputs == nil {
		return truncate(printable(string(result)), limit)
	}
	view := map[string]any{"answer": truncate(printable(r.Answer("answer")), limit)}
	for _, f := range []string{"question_type", "key_concepts"} {
		if v := r.Answer(f); v != "" {
			view[f] = truncate(printable(v), 512)
		}
	}
	view["latency_seconds"] = r.LatencySeconds
	view["model"] = r.Provenance.Model
	view["cache_hit"] = r.Provenance.CacheHit
	return indent(view)
}

func indent(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return "unprintable"
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// printable folds newlines and tabs into spaces (asynqmon's UI would call a
// value holding them non-printable) and drops other control characters.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			return -1
		}
		return r
	}, s)
}

// truncate cuts s to at most limit bytes on a rune boundary, marking the cut.
func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "… (truncated)"
}
