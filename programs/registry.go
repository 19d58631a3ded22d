package programs

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/redis/go-redis/v9"
)

// Defaults of Config; those of variables are package config's.
const (
	// DefaultMaxBytes is PROGRAM_MAX_BYTES's default: a push's file,
	// source and state together.
	DefaultMaxBytes = int64(config.DefaultProgramMaxBytes)
	// DefaultMaxVersions is PROGRAM_MAX_VERSIONS's default.
	DefaultMaxVersions = config.DefaultProgramMaxVersions
	// DefaultCacheVersions bounds the compiled versions a process keeps:
	// see Config.CacheVersions.
	DefaultCacheVersions = 16
	// DefaultCacheBytes bounds the pushed bytes of the compiled versions a
	// process keeps: see Config.CacheBytes.
	DefaultCacheBytes = 24 << 20
	// DefaultRefreshInterval is how often the alias cache is re-read whole.
	DefaultRefreshInterval = time.Second
)

// DefaultAlias is the alias a push moves and a name without one resolves.
const DefaultAlias = "latest"

// namePattern is what program names and aliases match, as program files'
// names do.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// Config configures a Registry. Zero fields take their defaults.
type Config struct {
	// MaxBytes caps a push: the YAML, the source and the state together
	// (PROGRAM_MAX_BYTES). Default DefaultMaxBytes.
	MaxBytes int64
	// MaxVersions is how many versions are kept per program; beyond, the
	// oldest unaliased ones are pruned (PROGRAM_MAX_VERSIONS). Default
	// DefaultMaxVersions.
	MaxVersions int
	// CacheVersions is how many compiled versions Program keeps, least
	// recently used evicted. A count, because a compiled version holds
	// about 1.4 times its state (signatures and demos decoded; 80 KB for a
	// 58 KB state with 16 demos: TestProgramMemory), and realistic states
	// are kilobytes to a few hundred: 16 of them stay far under the 50 MB a
	// process may grow by, while covering the versions a fleet runs at once
	// during a rollout (old and new of each live program). States near
	// PROGRAM_MAX_BYTES are bounded by CacheBytes instead. Default
	// DefaultCacheVersions.
	CacheVersions int
	// CacheBytes bounds the pushed bytes (file, source and state) of the
	// compiled versions Program keeps; the last one loaded is kept
	// whatever its size. At about 1.4 compiled bytes per pushed byte, the
	// default keeps a process within some 35 MB of compiled programs
	// however large they are pushed. Default DefaultCacheBytes.
	CacheBytes int64
	// RefreshInterval is how often Run re-reads every alias, the bound on
	// how late a move is seen when a pub/sub notice is lost. Default (and
	// most) DefaultRefreshInterval.
	RefreshInterval time.Duration
}

func (c Config) withDefaults() Config {
	c.MaxBytes = cmp.Or(c.MaxBytes, DefaultMaxBytes)
	c.MaxVersions = cmp.Or(c.MaxVersions, DefaultMaxVersions)
	c.CacheVersions = cmp.Or(c.CacheVersions, DefaultCacheVersions)
	c.CacheBytes = cmp.Or(c.CacheBytes, DefaultCacheBytes)
	c.RefreshInterval = cmp.Or(c.RefreshInterval, DefaultRefreshInterval)
	return c
}

// Source gives compiled programs by name and version: the Registry is one,
// and its fallback (the built-in QA program) another. It is the worker's
// Programs interface, written here again so neither package imports the
// other.
type Source interface {
	Program(ctx context.Context, name, version string) (*programfile.Compiled, error)
}

// Registry is the program registry on one Redis. Make it with New; Run
// keeps its alias cache fresh.
type Registry struct {
	rdb      redis.UniversalClient
	cfg      Config
	fallback Source

	mu sync.RWMutex
	// aliases is the alias cache: program name → alias → version, for the
	// programs this process has resolved or re-read.
	aliases map[string]map[string]string

	// cacheMu guards changes to compiled and cachedBytes together (the
	// LRU's eviction callback runs within them).
	cacheMu     sync.Mutex
	compiled    *lru.Cache[string, cachedVersion]
	cachedBytes int64
	// inputs are versions' input fields (Inputs), beyond compiled's reach.
	inputs *lru.Cache[string, []program.Field]
}

// cachedVersion is a compiled version and its pushed bytes.
type cachedVersion struct {
	c     *programfile.Compiled
	bytes int64
}

// New returns a registry on rdb. fallback serves ("qa", ""), the built-in
// program, and may be nil in a process that only pushes.
func New(rdb redis.UniversalClient, cfg Config, fallback Source) (*Registry, error) {
	cfg = cfg.withDefaults()
	switch {
	case cfg.MaxBytes < 1, cfg.MaxVersions < 1, cfg.CacheVersions < 1, cfg.CacheBytes < 1:
		return nil, fmt.Errorf("new registry: MaxBytes (%d), MaxVersions (%d), CacheVersions (%d) and CacheBytes (%d) must be positive",
			cfg.MaxBytes, cfg.MaxVersions, cfg.CacheVersions, cfg.CacheBytes)
	case cfg.RefreshInterval > DefaultRefreshInterval:
		return nil, fmt.Errorf("new registry: RefreshInterval %v is over %v: alias moves must reach every process within a second", cfg.RefreshInterval, DefaultRefreshInterval)
	}
	r := &Registry{rdb: rdb, cfg: cfg, fallback: fallback, aliases: map[string]map[string]string{}}
	c, err := lru.NewWithEvict(cfg.CacheVersions, func(_ string, v cachedVersion) { r.cachedBytes -= v.bytes })
	if err != nil {
		return nil, fmt.Errorf("new registry: %w", err)
	}
	r.compiled = c
	if r.inputs, err = lru.New[string, []program.Field](inputsCacheSize); err != nil {
		return nil, fmt.Errorf("new registry: %w", err)
	}
	return r, nil
}

// MaxBytes is the most a push may hold (PROGRAM_MAX_BYTES).
func (r *Registry) MaxBytes() int64 { return r.cfg.MaxBytes }

//go:embed registry.lua
var registryLua string

var registryScript = redis.NewScript(registryLua)

// PushError is why a push is refused; nothing was stored.
type PushError struct {
	// Part is what is at fault: "file" (the YAML), "source", "state",
	// "name" or "push" (the whole).
	Part string
	// Limit names the size limit exceeded (PROGRAM_MAX_BYTES,
	// MaxYAMLBytes), if that is the problem.
	Limit string
	Err   error
}

func (e *PushError) Error() string { return e.Part + ": " + e.Err.Error() }

func (e *PushError) Unwrap() error { return e.Err }

func pushErrorf(part, format string, args ...any) *PushError {
	return &PushError{Part: part, Err: fmt.Errorf(format, args...)}
}

// Check makes a bundle of a push's parts, as sent (nil: not sent), and
// checks it as far as it can without compiling: the sizes, the file
// (programfile.Parse: line:column and key of each problem), its name
// against name (the URL's; "" skips this) and that the source and state
// sent are the ones the file names.
func (r *Registry) Check(name string, yaml, source, state []byte) (*programfile.Bundle, error) {
	if n := int64(len(yaml) + len(source) + len(state)); n > r.cfg.MaxBytes {
		return nil, &PushError{Part: "push", Limit: "PROGRAM_MAX_BYTES",
			Err: fmt.Errorf("%d bytes, over PROGRAM_MAX_BYTES (%d)", n, r.cfg.MaxBytes)}
	}
	if len(yaml) > programfile.MaxYAMLBytes {
		return nil, &PushError{Part: "file", Limit: "MaxYAMLBytes",
			Err: fmt.Errorf("%d bytes, over the %d a program file may have", len(yaml), programfile.MaxYAMLBytes)}
	}
	f, err := programfile.Parse(yaml)
	if err != nil {
		return nil, &PushError{Part: "file", Err: err}
	}
	if name != "" && f.Name != name {
		return nil, pushErrorf("name", "the file is program %q, pushed as %q", f.Name, name)
	}
	for _, part := range []struct {
		what, named string
		sent        []byte
	}{{"source", f.Source, source}, {"state", f.State, state}} {
		switch {
		case part.named != "" && part.sent == nil:
			return nil, pushErrorf(part.what, "the file names %s %s, which the push lacks", part.what, part.named)
		case part.named == "" && part.sent != nil:
			return nil, pushErrorf(part.what, "the file names no %s", part.what)
		}
	}
	return &programfile.Bundle{File: f, YAML: yaml, Source: source, State: state}, nil
}

// Pushed is what a push did.
type Pushed struct {
	// Name and Version are the program's and the version's (sha256 hex).
	Name, Version string
	// Created is false when the version was stored already.
	Created bool
	// Pruned are the versions pruned to stay within MaxVersions.
	Pruned []string
}

// Push compiles b (a *PushError naming the part at fault if it does not)
// and stores it as a version of its program, moving DefaultAlias to it. A
// version stored already is kept as it was (the alias still moves).
func (r *Registry) Push(ctx context.Context, b *programfile.Bundle) (Pushed, error) {
	if _, err := r.Check(b.File.Name, b.YAML, b.Source, b.State); err != nil {
		return Pushed{}, err
	}
	c, err := programfile.Compile(b)
	if err != nil {
		return Pushed{}, &PushError{Part: compilePart(err), Err: err}
	}
	if err := r.checkQA(ctx, c); err != nil {
		return Pushed{}, err
	}
	version, err := b.Version()
	if err != nil {
		return Pushed{}, err
	}
	fields, err := versionFields(b, c, version, time.Now())
	if err != nil {
		return Pushed{}, err
	}
	name := b.File.Name
	res, err := r.run(ctx, "push", name, version, DefaultAlias, fields)
	if err != nil {
		return Pushed{}, fmt.Errorf("push program %s: %w", name, err)
	}
	r.cache(cacheKey(name, version), c, b)
	_, _ = r.refresh(ctx, name) // the alias cache catches up within a second anyway
	return Pushed{Name: name, Version: version, Created: res[0] == "1", Pruned: res[1:]}, nil
}

// ErrNoVersion is an alias move to a version not stored.
var ErrNoVersion = errors.New("no such version")

// SetAlias moves alias of program name to version, given whole or as a
// prefix of at least 12 characters that names one stored version (ErrNoVersion
// otherwise). It returns the version in full.
func (r *Registry) SetAlias(ctx context.Context, name, alias, version string) (string, error) {
	if !namePattern.MatchString(name) || !namePattern.MatchString(alias) {
		return "", fmt.Errorf("set alias %s@%s: %w", name, alias, ErrBadName)
	}
	full, err := r.fullVersion(ctx, name, version)
	if err != nil {
		return "", fmt.Errorf("set alias %s@%s: %w", name, alias, err)
	}
	res, err := r.run(ctx, "alias", name, full, alias, nil)
	if err != nil {
		return "", fmt.Errorf("set alias %s@%s: %w", name, alias, err)
	}
	if res[0] == "-1" { // pruned between the two reads
		return "", fmt.Errorf("set alias %s@%s: %s: %w", name, alias, version, ErrNoVersion)
	}
	r.refresh(ctx, name)
	return full, nil
}

// ErrBadName is a program name or alias that does not match
// ^[a-z][a-z0-9-]{0,62}$.
var ErrBadName = errors.New("names and aliases match ^[a-z][a-z0-9-]{0,62}$")

// minVersionPrefix is the shortest version prefix SetAlias takes: the
// length shown to users.
const minVersionPrefix = 12

func (r *Registry) fullVersion(ctx context.Context, name, version string) (string, error) {
	if len(version) < minVersionPrefix {
		return "", fmt.Errorf("version %q: give at least %d characters: %w", version, minVersionPrefix, ErrNoVersion)
	}
	all, err := r.rdb.ZRange(ctx, VersionsKey(name), 0, -1).Result()
	if err != nil {
		return "", fmt.Errorf("read versions: %w", err)
	}
	var found []string
	for _, v := range all {
		if strings.HasPrefix(v, version) {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("%s: %w", version, ErrNoVersion)
	}
	return "", fmt.Errorf("%s names %d versions: give more characters: %w", version, len(found), ErrNoVersion)
}

// run runs the registry script; res holds its answer as strings.
func (r *Registry) run(ctx context.Context, op, name, version, alias string, fields []any) ([]string, error) {
	keys := []string{NamesKey, VersionsKey(name), AliasesKey(name), VersionKey(name, version)}
	args := append([]any{op, name, version, alias, r.cfg.MaxVersions, AliasChannel, versionPrefix(name), time.Now().UnixMilli()}, fields...)
	raw, err := registryScript.Run(ctx, r.rdb, keys, args...).Slice()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(raw))
	for i, v := range raw {
		switch v := v.(type) {
		case int64:
			out[i] = strconv.FormatInt(v, 10)
		case string:
			out[i] = v
		}
	}
	return out, nil
}

// versionFields are the fields of a version's hash: the parts as pushed
// (source and state only when the file names them), the canonical file, and
// the public description (Info) as JSON.
func versionFields(b *programfile.Bundle, c *programfile.Compiled, version string, now time.Time) ([]any, error) {
	canonical, err := b.File.Canonical()
	if err != nil {
		return nil, err
	}
	info := describe(c, version, now)
	infoJSON, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("encode program info: %w", err)
	}
	fields := []any{"file", b.YAML, "canonical", canonical, "created", now.UnixMilli(), "info", infoJSON}
	if b.File.Source != "" {
		fields = append(fields, "source", b.Source)
	}
	if b.File.State != "" {
		fields = append(fields, "state", b.State)
	}
	return fields, nil
}

// checkQA refuses a qa whose inputs or outputs differ, in name, order or
// type, from the built-in program's: a pushed qa runs the seed's
// endpoints, whose request and response shapes are the built-in's.
func (r *Registry) checkQA(ctx context.Context, c *programfile.Compiled) error {
	if c.Built.Name != jobs.ProgramQA || r.fallback == nil {
		return nil
	}
	builtin, err := r.fallback.Program(ctx, jobs.ProgramQA, "")
	if err != nil {
		return fmt.Errorf("read the built-in program: %w", err)
	}
	outFields := func(outs []programfile.Output) []program.Field {
		f := make([]program.Field, len(outs))
		for i, o := range outs {
			f[i] = o.Field
		}
		return f
	}
	for _, side := range []struct {
		what      string
		got, want []program.Field
	}{
		{"input", c.Built.Inputs, builtin.Built.Inputs},
		{"output", outFields(c.Built.Outputs), outFields(builtin.Built.Outputs)},
	} {
		if got, want := fieldNames(side.got), fieldNames(side.want); got != want {
			return pushErrorf("file", "a pushed qa runs the seed's endpoints, so it keeps the built-in signature: %ss: %s, want %s", side.what, got, want)
		}
		for i, f := range side.got {
			if got, want := f.Type.String(), side.want[i].Type.String(); got != want {
				return pushErrorf("file", "a pushed qa runs the seed's endpoints, so it keeps the built-in signature: %s %s is %s, want %s", side.what, f.Name, got, want)
			}
		}
	}
	return nil
}

func fieldNames(fields []program.Field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}
