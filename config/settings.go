package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Setting is one variable's effective value, as `qa config` shows it.
type Setting struct {
	// Name is the variable, e.g. JOB_TIMEOUT.
	Name string `json:"name"`
	// Group is the Config field holding it, e.g. Queue.
	Group string `json:"group"`
	// Value is written as the environment would take it back, with
	// secrets masked ([Mask]; passwords inside URLs only).
	Value string `json:"value"`
	// Source is where it came from: [SourceDefault], [SourceEnv],
	// [SourceDotEnv], or one of the last two followed by the variable read
	// in its place, as in "env (OPENAI_API_KEY)". Empty for a Config that
	// was not loaded.
	Source string `json:"source"`
}

// Settings lists every variable with its effective value, secrets masked,
// in the order of the Config fields.
func (c *Config) Settings() []Setting {
	root := reflect.ValueOf(c).Elem()
	vars := variables()
	out := make([]Setting, len(vars))
	for i, v := range vars {
		out[i] = Setting{
			Name:   v.name,
			Group:  v.group,
			Value:  formatValue(root.FieldByIndex(v.index)),
			Source: c.sources[v.name],
		}
	}
	return out
}

// String renders the configuration as `qa config` prints it: grouped
// NAME=value lines with their source, secrets masked. It makes printing a
// Config with %v or %s safe.
func (c *Config) String() string {
	var b strings.Builder
	group := ""
	for _, s := range c.Settings() {
		if s.Group != group {
			if group != "" {
				b.WriteByte('\n')
			}
			group = s.Group
			fmt.Fprintf(&b, "# %s\n", group)
		}
		line := s.Name + "=" + quoteIfNeeded(s.Value)
		if s.Source != "" {
			line = fmt.Sprintf("%-45s # %s", line, s.Source)
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// GoString keeps %#v as safe as %v.
func (c *Config) GoString() string { return c.String() }

// quoteIfNeeded quotes values a .env parser would otherwise misread.
func quoteIfNeeded(v string) string {
	if strings.ContainsAny(v, " \t\n\"'#\\$") {
		return strconv.Quote(v)
	}
	return v
}

// formatValue writes a field the way its variable is written.
func formatValue(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	switch x := v.Interface().(type) {
	case time.Duration:
		return formatDuration(x)
	case fmt.Stringer: // Secret, SecretURL, APIKeys, Size, List mask or format themselves
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}

// formatDuration writes whole hours as "24h" and whole minutes as "2m"
// rather than "24h0m0s"; both forms parse back the same.
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
