package programs

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/qaqueue/qaqueue/jobs"
	"github.com/redis/go-redis/v9"
)

// UnknownError is a program reference Resolve cannot resolve.
type UnknownError struct {
	// Program is the name, Alias the alias ("" when the program is
	// unknown).
	Program, Alias string
	// Known lists the programs (for an unknown program) or the program's
	// aliases (for an unknown alias).
	Known []string
}

func (e *UnknownError) Error() string {
	if e.Alias != "" {
		return fmt.Sprintf("program %s has no alias %q (its aliases: %s)", e.Program, e.Alias, strings.Join(e.Known, ", "))
	}
	return fmt.Sprintf("unknown program %q (known: %s)", e.Program, strings.Join(e.Known, ", "))
}

// SplitRef splits "name[@alias]"; the alias defaults to DefaultAlias.
func SplitRef(ref string) (name, alias string) {
	name, alias, ok := strings.Cut(ref, "@")
	if !ok {
		alias = DefaultAlias
	}
	return name, alias
}

// Resolve returns the program name and version that ref, "name[@alias]",
// names now. It reads the alias cache, and Redis for a program or alias the
// cache lacks (a push this process has not heard of yet). qa with no
// pushed qa resolves to version "", the built-in program. Anything else
// unknown is an *UnknownError.
func (r *Registry) Resolve(ctx context.Context, ref string) (name, version string, err error) {
	name, alias := SplitRef(ref)
	if !namePattern.MatchString(name) || !namePattern.MatchString(alias) {
		return "", "", r.unknown(ctx, name, alias, nil)
	}
	r.mu.RLock()
	aliases, cached := r.aliases[name]
	r.mu.RUnlock()
	if version, ok := resolveIn(name, alias, aliases, cached); ok {
		return name, version, nil
	}
	// Not cached, or an alias made since the last refresh: read it now.
	if aliases, err = r.refresh(ctx, name); err != nil {
		return "", "", fmt.Errorf("resolve program %s: %w", ref, err)
	}
	if version, ok := resolveIn(name, alias, aliases, true); ok {
		return name, version, nil
	}
	return "", "", r.unknown(ctx, name, alias, aliases)
}

// resolveIn resolves name@alias in a program's aliases (cached: the cache
// has them). qa's empty aliases, cached, are the built-in program's.
func resolveIn(name, alias string, aliases map[string]string, cached bool) (string, bool) {
	if version, ok := aliases[alias]; ok {
		return version, true
	}
	if cached && name == jobs.ProgramQA && len(aliases) == 0 && alias == DefaultAlias {
		return "", true
	}
	return "", false
}

// unknown is the *UnknownError for name@alias given the program's aliases
// (none: the program is unknown).
func (r *Registry) unknown(ctx context.Context, name, alias string, aliases map[string]string) error {
	if len(aliases) > 0 {
		return &UnknownError{Program: name, Alias: alias, Known: slices.Sorted(maps.Keys(aliases))}
	}
	names, err := r.Names(ctx)
	if err != nil {
		return fmt.Errorf("resolve program %s: %w", name, err)
	}
	return &UnknownError{Program: name, Known: names}
}

// Names lists the programs a job may name: the pushed ones and qa, sorted.
func (r *Registry) Names(ctx context.Context) ([]string, error) {
	names, err := r.rdb.SMembers(ctx, NamesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("read program names: %w", err)
	}
	if !slices.Contains(names, jobs.ProgramQA) {
		names = append(names, jobs.ProgramQA)
	}
	slices.Sort(names)
	return names, nil
}

// refresh re-reads name's aliases into the cache and returns them. A
// program without aliases (not pushed) is not cached, so names a client
// makes up do not grow the cache; qa is, as its empty aliases mean the
// built-in program, which every seed request resolves.
func (r *Registry) refresh(ctx context.Context, name string) (map[string]string, error) {
	var aliases *redis.MapStringStringCmd
	var versions *redis.StringSliceCmd
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		aliases, versions = p.HGetAll(ctx, AliasesKey(name)), p.ZRange(ctx, VersionsKey(name), 0, -1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read aliases: %w", err)
	}
	r.evictGone(map[string][]string{name: versions.Val()})
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := aliases.Val(); len(a) > 0 || name == jobs.ProgramQA {
		r.aliases[name] = a
	} else {
		delete(r.aliases, name)
	}
	return aliases.Val(), nil
}

// refreshAll re-reads every program's aliases, replacing the cache.
func (r *Registry) refreshAll(ctx context.Context) error {
	names, err := r.rdb.SMembers(ctx, NamesKey).Result()
	if err != nil {
		return fmt.Errorf("read program names: %w", err)
	}
	if !slices.Contains(names, jobs.ProgramQA) {
		names = append(names, jobs.ProgramQA)
	}
	aliases := make([]*redis.MapStringStringCmd, len(names))
	versions := make([]*redis.StringSliceCmd, len(names))
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			aliases[i], versions[i] = p.HGetAll(ctx, AliasesKey(n)), p.ZRange(ctx, VersionsKey(n), 0, -1)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read aliases: %w", err)
	}
	all := make(map[string]map[string]string, len(names))
	stored := make(map[string][]string, len(names))
	for i, n := range names {
		if a := aliases[i].Val(); len(a) > 0 || n == jobs.ProgramQA {
			all[n] = a
		}
		stored[n] = versions[i].Val()
	}
	r.evictGone(stored)
	r.mu.Lock()
	r.aliases = all
	r.mu.Unlock()
	return nil
}

// evictGone drops the compiled versions, and the inputs, of the programs
// in stored (name → its stored versions) that are no longer stored, so
// that a pruned version is gone in every process, not only in those that
// never loaded it.
func (r *Registry) evictGone(stored map[string][]string) {
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	for _, key := range r.compiled.Keys() {
		name, version, _ := strings.Cut(key, "@")
		if versions, ok := stored[name]; ok && !slices.Contains(versions, version) {
			r.compiled.Remove(key)
		}
	}
	for _, key := range r.inputs.Keys() {
		name, version, _ := strings.Cut(key, "@")
		if versions, ok := stored[name]; ok && version != "" && !slices.Contains(versions, version) {
			r.inputs.Remove(key)
		}
	}
}

// Run keeps the alias cache fresh until ctx ends: a program is re-read
// when its name arrives on AliasChannel, and every program each
// RefreshInterval, which also covers notices lost while the subscription
// was down. Errors go to onError (nil: ignored) and do not stop it: the
// cache keeps its last values until Redis answers again.
func (r *Registry) Run(ctx context.Context, onError func(error)) {
	sub := r.rdb.Subscribe(ctx, AliasChannel)
	defer sub.Close()
	r.loop(ctx, sub.Channel(), r.cfg.RefreshInterval, onError)
}

// FollowPrunes drops compiled versions as pushes prune them, from
// AliasChannel's notices alone, until ctx ends: what a worker runs. A
// worker never resolves an alias, so it does not pay Run's re-read every
// second, and an idle worker sends Redis nothing. A notice lost while the
// subscription was down leaves a pruned version compiled in this process,
// and a job queued on it still runs, on the exact version it was resolved
// to, instead of failing with program_version_gone.
func (r *Registry) FollowPrunes(ctx context.Context, onError func(error)) {
	sub := r.rdb.Subscribe(ctx, AliasChannel)
	defer sub.Close()
	r.loop(ctx, sub.Channel(), 0, onError)
}

// loop refreshes on each notice from notices (nil: none come) and, when
// interval is not zero, every program at the start and on each tick.
func (r *Registry) loop(ctx context.Context, notices <-chan *redis.Message, interval time.Duration, onError func(error)) {
	report := func(err error) {
		if err != nil && onError != nil && ctx.Err() == nil {
			onError(err)
		}
	}
	var ticks <-chan time.Time
	if interval > 0 {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		ticks = tick.C
		report(r.refreshAll(ctx))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-notices:
			if !ok {
				notices = nil // closed with the subscription; the ticks go on
				continue
			}
			_, err := r.refresh(ctx, m.Payload)
			report(err)
		case <-ticks:
			report(r.refreshAll(ctx))
		}
	}
}
