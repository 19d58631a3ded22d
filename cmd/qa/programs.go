package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/qaqueue/qaqueue/programs"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// newProgramRegistry is the program registry on rdb with PROGRAM_MAX_BYTES
// and PROGRAM_MAX_VERSIONS. builtin serves qa's version "": the API's reads
// only its inputs (programs.NewBuiltin); a worker's runs it, with
// PROGRAM_STATE_PATH's state.
func newProgramRegistry(cfg *config.Config, rdb redis.UniversalClient, builtin programs.Source) (*programs.Registry, error) {
	return programs.New(rdb, programs.Config{MaxBytes: int64(cfg.LM.ProgramMaxBytes), MaxVersions: cfg.LM.ProgramMaxVersions}, builtin)
}

// pushProgramsDir pushes every program file (*.yaml) of PROGRAMS_DIR, with
// the source and state each names, read from the folder through an
// os.Root (programfile.Load). A file that does not push stops start-up,
// named: a served program should not be silently missing. No folder: no
// push.
func pushProgramsDir(ctx context.Context, r *programs.Registry, dir string, log zerolog.Logger) error {
	if dir == "" {
		return nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("PROGRAMS_DIR: %w", err)
	}
	slices.Sort(files)
	for _, f := range files {
		b, err := programfile.Load(dir, filepath.Base(f), r.MaxBytes())
		if err != nil {
			return fmt.Errorf("PROGRAMS_DIR: %w", err)
		}
		p, err := r.Push(ctx, b)
		if err != nil {
			return fmt.Errorf("PROGRAMS_DIR: push %s: %w", f, err)
		}
		log.Info().Str("component", "programs").Str("program", p.Name).Str("version", p.Version).Bool("new", p.Created).Msg("pushed PROGRAMS_DIR program")
	}
	return nil
}

// runPrograms is `qa programs push|list|show|alias`: the registry through
// QA_URL's admin routes (QA_API_KEY an admin key for push and alias).
func runPrograms(ctx context.Context, e env, args []string) error {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `usage: qa programs COMMAND [flags] ARGS

The program registry on QA_URL (default `+defaultAPIURL+`; QA_API_KEY is
sent as a Bearer key: an admin key for push and alias).

  push FILE                 push a program file with the source and state it
                            names (paths relative to FILE's folder); prints the version
  list                      the programs, their aliases and versions
  show NAME                 one program as JSON (an admin key also sees its
                            instructions, demos and source)
  alias NAME@ALIAS VERSION  point ALIAS at VERSION (12 characters or more)
`)
	}
	if len(args) == 0 {
		usage(e.stderr)
		return errUsage
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("qa programs "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	cf := addClientFlags(fs)
	fs.Usage = func() { usage(e.stderr); fmt.Fprintln(e.stderr, "\nflags:"); fs.PrintDefaults() }
	pos, err := parseWithPositional(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	want := map[string]int{"push": 1, "list": 0, "show": 1, "alias": 2}
	if n, ok := want[sub]; !ok || len(pos) != n {
		fs.Usage()
		return errUsage
	}
	c, err := newAPIClient(e, cf)
	if err != nil {
		return err
	}
	switch sub {
	case "push":
		return pushProgramFile(ctx, e, c, pos[0])
	case "list":
		return listPrograms(ctx, e, c)
	case "show":
		return showProgram(ctx, e, c, pos[0])
	}
	return setProgramAlias(ctx, e, c, pos[0], pos[1])
}

// pushProgramFile reads file with the source and state it names from its
// folder (never outside it: os.Root, and Parse refuses ".." and absolute
// paths) and sends their contents.
func pushProgramFile(ctx context.Context, e env, c *apiClient, file string) error {
	b, err := programfile.Load(filepath.Dir(file), filepath.Base(file), programMaxBytes)
	if err != nil {
		return err
	}
	body := map[string]string{"file": string(b.YAML)}
	if b.File.Source != "" {
		body["source"] = string(b.Source)
	}
	if b.File.State != "" {
		body["state"] = string(b.State)
	}
	var p struct {
		Name, Version string
		Created       bool
		Pruned        []string
	}
	if err := c.getJSON(ctx, "PUT", "/v1/programs/"+url.PathEscape(b.File.Name), body, &p); err != nil {
		return err
	}
	note := "new version"
	if !p.Created {
		note = "already stored"
	}
	fmt.Fprintf(e.stdout, "%s@latest = %s (%s)\n", p.Name, p.Version, note)
	for _, v := range p.Pruned {
		fmt.Fprintf(e.stderr, "pruned %s (PROGRAM_MAX_VERSIONS)\n", v)
	}
	return nil
}

type programListing struct {
	Name     string            `json:"name"`
	Aliases  map[string]string `json:"aliases"`
	Versions []struct {
		Version   string `json:"version"`
		CreatedAt string `json:"created_at"`
	} `json:"versions"`
}

func listPrograms(ctx context.Context, e env, c *apiClient) error {
	var l struct{ Programs []programListing }
	if err := c.getJSON(ctx, "GET", "/v1/programs", nil, &l); err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tVERSIONS\tALIASES")
	for _, p := range l.Programs {
		var aliases []string
		for _, a := range slices.Sorted(maps.Keys(p.Aliases)) {
			aliases = append(aliases, a+"="+short(p.Aliases[a]))
		}
		fmt.Fprintf(w, "%s\t%d\t%s\n", p.Name, len(p.Versions), strings.Join(aliases, " "))
	}
	return w.Flush()
}

func showProgram(ctx context.Context, e env, c *apiClient, name string) error {
	var v json.RawMessage
	if err := c.getJSON(ctx, "GET", "/v1/programs/"+url.PathEscape(name), nil, &v); err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func setProgramAlias(ctx context.Context, e env, c *apiClient, ref, version string) error {
	name, alias, ok := strings.Cut(ref, "@")
	if !ok || name == "" || alias == "" {
		return fmt.Errorf("%q: give NAME@ALIAS, such as claims@stable", ref)
	}
	var out struct{ Name, Alias, Version string }
	path := "/v1/programs/" + url.PathEscape(name) + "/aliases/" + url.PathEscape(alias)
	if err := c.getJSON(ctx, "PUT", path, map[string]string{"version": version}, &out); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s@%s = %s\n", out.Name, out.Alias, out.Version)
	return nil
}

// short is a version as shown: its first 12 characters.
func short(v string) string { return v[:min(len(v), 12)] }
