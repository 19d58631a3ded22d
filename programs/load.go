package programs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/redis/go-redis/v9"
)

func cacheKey(name, version string) string { return name + "@" + version }

// Program returns the compiled version of program name: from the LRU, or
// read from Redis and compiled. ("qa", "") is the fallback's built-in
// program. A version not stored (pruned, or never pushed) is an error
// wrapping jobs.ErrProgramVersionGone. Two callers missing the same
// version at once both compile it; the LRU keeps one.
func (r *Registry) Program(ctx context.Context, name, version string) (*programfile.Compiled, error) {
	if version == "" {
		if name != jobs.ProgramQA || r.fallback == nil {
			return nil, fmt.Errorf("load program %s: no version given, and only qa has a built-in one: %w", name, jobs.ErrProgramVersionGone)
		}
		return r.fallback.Program(ctx, name, version)
	}
	if !validRef(name, version) {
		return nil, fmt.Errorf("load program %q@%q: %w", name, short(version), jobs.ErrProgramVersionGone)
	}
	key := cacheKey(name, version)
	if v, ok := r.compiled.Get(key); ok {
		return v.c, nil
	}
	b, err := r.bundle(ctx, name, version)
	if err != nil {
		return nil, err
	}
	c, err := programfile.Compile(b)
	if err != nil {
		return nil, fmt.Errorf("load program %s@%s: %w", name, short(version), err)
	}
	r.cache(key, c, b)
	return c, nil
}

// cache keeps c, compiled from b, under key, evicting the least recently
// used versions beyond CacheVersions or CacheBytes (never the one just
// kept).
func (r *Registry) cache(key string, c *programfile.Compiled, b *programfile.Bundle) {
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if r.compiled.Contains(key) {
		return
	}
	size := int64(len(b.YAML) + len(b.Source) + len(b.State))
	r.compiled.Add(key, cachedVersion{c: c, bytes: size})
	r.cachedBytes += size
	for r.cachedBytes > r.cfg.CacheBytes && r.compiled.Len() > 1 {
		r.compiled.RemoveOldest()
	}
}

// versionPattern is a version: sha256 hex.
var versionPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// validRef reports whether name and version can name a stored version, so
// that nothing else a request says reaches a key name.
func validRef(name, version string) bool {
	return namePattern.MatchString(name) && versionPattern.MatchString(version)
}

// short is a version as shown: its first 12 characters.
func short(version string) string { return version[:min(len(version), minVersionPrefix)] }

// bundle reads a stored version's parts.
func (r *Registry) bundle(ctx context.Context, name, version string) (*programfile.Bundle, error) {
	vals, err := r.rdb.HMGet(ctx, VersionKey(name, version), "file", "source", "state").Result()
	if err != nil {
		return nil, fmt.Errorf("load program %s@%s: %w", name, short(version), err)
	}
	if vals[0] == nil {
		return nil, fmt.Errorf("load program %s@%s: %w", name, short(version), jobs.ErrProgramVersionGone)
	}
	part := func(v any) []byte {
		if s, ok := v.(string); ok {
			return []byte(s)
		}
		return nil
	}
	b := &programfile.Bundle{YAML: part(vals[0]), Source: part(vals[1]), State: part(vals[2])}
	if b.File, err = programfile.Parse(b.YAML); err != nil {
		return nil, fmt.Errorf("load program %s@%s: %w", name, short(version), err)
	}
	return b, nil
}

// Listing is a program as GET /v1/programs shows it.
type Listing struct {
	Name string `json:"name"`
	// Aliases maps each alias to its version.
	Aliases map[string]string `json:"aliases"`
	// Versions are newest first.
	Versions []Info `json:"versions"`
}

// List describes every program, by name: the pushed ones, and the built-in
// qa while no qa is pushed.
func (r *Registry) List(ctx context.Context) ([]Listing, error) {
	names, err := r.rdb.SMembers(ctx, NamesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list programs: %w", err)
	}
	if r.fallback != nil && !slices.Contains(names, jobs.ProgramQA) {
		names = append(names, jobs.ProgramQA)
	}
	out := make([]Listing, 0, len(names))
	for _, n := range sortedStrings(names) {
		l, err := r.Get(ctx, n)
		if errors.Is(err, ErrNotPushed) {
			continue // pruned away between the reads: cannot happen today, harmless
		}
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// ErrNotPushed is a program no push made.
var ErrNotPushed = errors.New("program not pushed")

// Get describes program name: its aliases and versions, newest first.
func (r *Registry) Get(ctx context.Context, name string) (Listing, error) {
	if !namePattern.MatchString(name) {
		return Listing{}, fmt.Errorf("read program %q: %w", name, ErrNotPushed)
	}
	var aliases *redis.MapStringStringCmd
	var versions *redis.StringSliceCmd
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		aliases = p.HGetAll(ctx, AliasesKey(name))
		versions = p.ZRevRange(ctx, VersionsKey(name), 0, -1)
		return nil
	})
	if err != nil {
		return Listing{}, fmt.Errorf("read program %s: %w", name, err)
	}
	if len(versions.Val()) == 0 {
		if name == jobs.ProgramQA && r.fallback != nil {
			return r.builtinListing(ctx)
		}
		return Listing{}, fmt.Errorf("read program %s: %w", name, ErrNotPushed)
	}
	infos := make([]*redis.StringCmd, len(versions.Val()))
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, v := range versions.Val() {
			infos[i] = p.HGet(ctx, VersionKey(name, v), "info")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Listing{}, fmt.Errorf("read program %s: %w", name, err)
	}
	l := Listing{Name: name, Aliases: aliases.Val(), Versions: []Info{}}
	for _, cmd := range infos {
		var info Info
		if cmd.Err() != nil || json.Unmarshal([]byte(cmd.Val()), &info) != nil {
			continue // pruned between the two reads
		}
		l.Versions = append(l.Versions, info)
	}
	return l, nil
}

// Detail describes one version of program name for an admin key.
func (r *Registry) Detail(ctx context.Context, name, version string) (Detail, error) {
	if !validRef(name, version) {
		return Detail{}, fmt.Errorf("read program %q@%q: %w", name, short(version), jobs.ErrProgramVersionGone)
	}
	vals, err := r.rdb.HMGet(ctx, VersionKey(name, version), "info", "file", "source", "state").Result()
	if err != nil {
		return Detail{}, fmt.Errorf("read program %s@%s: %w", name, short(version), err)
	}
	if vals[0] == nil {
		return Detail{}, fmt.Errorf("read program %s@%s: %w", name, short(version), jobs.ErrProgramVersionGone)
	}
	var d Detail
	if err := json.Unmarshal([]byte(vals[0].(string)), &d.Info); err != nil {
		return Detail{}, fmt.Errorf("read program %s@%s: %w", name, short(version), err)
	}
	d.File, _ = vals[1].(string)
	d.Source, _ = vals[2].(string)
	d.State, _ = vals[3].(string)
	c, err := r.Program(ctx, name, version)
	if err != nil {
		return Detail{}, err
	}
	d.StageDetails = stageDetails(c)
	return d, nil
}

// builtinListing is the built-in qa program, which no push made: its one
// version is "", the version its jobs record, and it has no aliases.
func (r *Registry) builtinListing(ctx context.Context) (Listing, error) {
	c, err := r.fallback.Program(ctx, jobs.ProgramQA, "")
	if err != nil {
		return Listing{}, fmt.Errorf("read the built-in program: %w", err)
	}
	return Listing{Name: jobs.ProgramQA, Aliases: map[string]string{}, Versions: []Info{describe(c, "", time.Time{})}}, nil
}
