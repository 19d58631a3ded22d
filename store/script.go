package store

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

//go:embed events.lua
var eventsLua string

//go:embed usage.lua
var usageLua string

// eventsPrelude is what NewScript puts before a script: the event templates
// as a Lua table T, then events.lua (fill, append_event), then the usage
// counters' names and usage.lua (count_usage).
var eventsPrelude = templatesLua() + eventsLua + countersLua() + usageLua

// NewScript returns a Redis script that appends events (record.lua,
// batch.lua): body runs after the templates Go rendered from the events'
// types (T) and the functions that fill them in and append an event
// (events.lua), and the one that counts a completion's usage (usage.lua).
func NewScript(body string) *redis.Script { return redis.NewScript(eventsPrelude + body) }

// templatesLua renders jobs.Templates as a Lua table of string literals.
func templatesLua() string {
	var b strings.Builder
	b.WriteString("local T = {")
	for _, t := range jobs.Templates() {
		fmt.Fprintf(&b, "%s = %s, ", t.Name, luaString(t.Text))
	}
	b.WriteString("}\n")
	return b.String()
}

// countersLua renders usageCounters as the Lua list usage_counters.
func countersLua() string {
	var b strings.Builder
	b.WriteString("local usage_counters = {")
	for _, c := range usageCounters {
		b.WriteString(luaString(c) + ", ")
	}
	b.WriteString("}\n")
	return b.String()
}

// luaString quotes s for Lua: printable ASCII as it is, every other byte
// (and the quote and backslash) as a three-digit decimal escape.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= ' ' && c <= '~' && c != '"' && c != '\\' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\%03d", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
