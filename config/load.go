package config

import (
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Lookup returns an environment variable's value and whether it is set, as
// os.LookupEnv does. An empty value counts as unset everywhere in this
// package.
type Lookup func(name string) (string, bool)

// MapLookup is a Lookup over a map, for tests and callers that already hold
// the environment as a map.
func MapLookup(m map[string]string) Lookup {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// Sources of a value, as [Setting.Source] reports them.
const (
	SourceDefault = "default"
	SourceEnv     = "env"
	SourceDotEnv  = ".env"
)

// Load reads the configuration: each variable from environ if set there,
// else from dotenv (the parsed .env file, see [LoadDotEnv]; nil for none),
// else its default. It parses, resolves derived defaults, validates, and
// returns the notices worth logging at start-up (see [Config.Notices]).
// The error joins every problem found, each naming its variable.
func Load(environ Lookup, dotenv map[string]string) (*Config, []string, error) {
	cfg, err := Parse(environ, dotenv)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	return cfg, cfg.Notices(), nil
}

// LoadWithDotEnv reads the .env file at path, if there is one, then calls
// [Load]. It is what the commands use: LoadWithDotEnv(os.LookupEnv, ".env").
func LoadWithDotEnv(environ Lookup, path string) (*Config, []string, error) {
	dotenv, err := LoadDotEnv(path)
	if err != nil {
		return nil, nil, err
	}
	return Load(environ, dotenv)
}

// Default returns the configuration with every variable unset: the
// documented defaults, for tests and examples in other packages. It panics
// if the defaults do not validate, which this package's tests rule out.
func Default() *Config {
	cfg, _, err := Load(MapLookup(nil), nil)
	if err != nil {
		panic("config: the defaults do not validate: " + err.Error())
	}
	return cfg
}

// Parse reads and parses the configuration as [Load] does, without
// validating it, so `qa config` can show a configuration that would not
// start. Its error joins every value that does not parse.
func Parse(environ Lookup, dotenv map[string]string) (*Config, error) {
	r := resolver{environ: environ, dotenv: dotenv}
	// Every field starts at its default; the env library sets only those
	// whose variable has a value.
	cfg := new(defaultConfig())
	cfg.sources = map[string]string{}
	vars := variables()
	values := make(map[string]string, len(vars))
	for _, v := range vars {
		val, src := r.get(v.name)
		if src != "" {
			values[v.name] = val
		}
		cfg.sources[v.name] = cmp.Or(src, SourceDefault)
	}
	var errs []error
	sections := reflect.ValueOf(cfg).Elem()
	for i := range sections.NumField() {
		f := sections.Field(i)
		if !f.CanSet() || f.Kind() != reflect.Struct {
			continue
		}
		opts := env.Options{Environment: values, FuncMap: parsers()}
		if err := env.ParseWithOptions(f.Addr().Interface(), opts); err != nil {
			errs = append(errs, describeParseErrors(f.Type(), values, err)...)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.resolve(r)
	return cfg, nil
}

// resolver layers the environment over the .env file.
type resolver struct {
	environ Lookup
	dotenv  map[string]string
}

// get returns a variable's value and its source, or "" and "" when it is
// unset (or empty) in both.
func (r resolver) get(name string) (string, string) {
	if r.environ != nil {
		if v, ok := r.environ(name); ok && v != "" {
			return v, SourceEnv
		}
	}
	if v := r.dotenv[name]; v != "" {
		return v, SourceDotEnv
	}
	return "", ""
}

// resolve fills the defaults that depend on other values, and normalizes
// the values that have several spellings.
func (c *Config) resolve(r resolver) {
	if c.Cache.Dir == "" {
		c.Cache.Dir = defaultCacheDir(r)
	}
	if c.LM.APIKey == "" {
		name := providerVar(c.LM.Model, "API_KEY")
		if v, src := r.get(name); src != "" {
			c.LM.APIKey = Secret(v)
			c.sources["LM_API_KEY"] = src + " (" + name + ")"
		}
	}
	if c.LM.APIBase == "" {
		name := providerVar(c.LM.Model, "API_BASE")
		if v, src := r.get(name); src != "" {
			c.LM.APIBase = v
			c.sources["LM_API_BASE"] = src + " (" + name + ")"
		}
	}
	if c.Security.RateLimitBurst == 0 {
		c.Security.RateLimitBurst = DefaultRateLimitBurst(c.Security.RateLimitRPS)
	}
	c.Log.Level = normalizeLevel(c.Log.Level)
	c.Log.Format = strings.ToLower(c.Log.Format)
}

// defaultCacheDir follows the XDG convention on every OS, read through the
// lookup rather than os.UserCacheDir so tests control it; without a home it
// falls back to a directory under the working directory.
func defaultCacheDir(r resolver) string {
	if dir, src := r.get("XDG_CACHE_HOME"); src != "" {
		return strings.TrimRight(dir, "/") + "/qaqueue"
	}
	if home, src := r.get("HOME"); src != "" {
		return strings.TrimRight(home, "/") + "/.cache/qaqueue"
	}
	return ".cache/qaqueue"
}

func normalizeLevel(level string) string {
	switch l := strings.ToLower(strings.TrimSpace(level)); l {
	case "warning":
		return "warn"
	case "critical":
		return "fatal"
	default:
		return l
	}
}

// parsers replaces the env library's bool parser, to accept the yes/no and
// on/off spellings people write in .env files.
func parsers() map[reflect.Type]env.ParserFunc {
	return map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[bool](): func(v string) (any, error) { return parseBool(v) },
	}
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "t", "true", "yes", "y", "on":
		return true, nil
	case "0", "f", "false", "no", "n", "off":
		return false, nil
	}
	return false, errors.New("not a boolean")
}

// describeParseErrors turns the env library's errors, which name Go
// fields, into messages that name the variable and say what was expected.
func describeParseErrors(section reflect.Type, values map[string]string, err error) []error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return []error{fmt.Errorf("parse %s settings: %w", section.Name(), err)}
	}
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			out = append(out, fmt.Errorf("parse %s settings: %w", section.Name(), e))
			continue
		}
		field, _ := section.FieldByName(pe.Name)
		name := strings.Split(field.Tag.Get("env"), ",")[0]
		if multi, ok := pe.Err.(interface{ Unwrap() []error }); ok {
			// One line per problem (API_KEYS reports each bad entry).
			for _, inner := range multi.Unwrap() {
				out = append(out, &Error{Var: name, Problem: inner.Error()})
			}
			continue
		}
		out = append(out, &Error{Var: name, Problem: expectation(pe.Type, values[name], pe.Err)})
	}
	return out
}

// expectation says what a value of type t looks like.
func expectation(t reflect.Type, got string, err error) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	shown := quoteValue(got)
	switch {
	case t == reflect.TypeFor[APIKeys]():
		// Never echo a key list: its messages name entries instead.
		return err.Error()
	case reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()):
		// Our own types (Size) say what they expect.
		return err.Error() + ", got " + shown
	case t == reflect.TypeFor[time.Duration]():
		if _, numErr := strconv.ParseFloat(got, 64); numErr == nil {
			return fmt.Sprintf("must be a duration with a unit, such as %ss, got %s", got, shown)
		}
		return "must be a duration such as 30s, 2m or 24h, got " + shown
	case t.Kind() == reflect.Bool:
		return "must be true or false, got " + shown
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		if errors.Is(err, strconv.ErrRange) {
			return "is out of range, got " + shown
		}
		return "must be a whole number, got " + shown
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "must be a number, got " + shown
	}
	return err.Error()
}

// quoteValue quotes a value for an error message, cut short so a pasted
// file does not flood the terminal.
func quoteValue(v string) string {
	const limit = 64
	if len(v) > limit {
		return strconv.Quote(v[:limit]) + "…"
	}
	return strconv.Quote(v)
}
