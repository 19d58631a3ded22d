package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/qaqueue/qaqueue/config"
)

// runConfig prints the effective configuration with secrets masked: each
// variable, its value and where the value came from. An invalid
// configuration is still printed, then its problems, and the exit status
// is 1, so `qa config` is also the way to check a deployment's settings.
func runConfig(_ context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa config", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	asJSON := fs.Bool("json", false, "print JSON: {settings: {NAME: {value, source, group}}, notices, errors}")
	envFile := fs.String("env-file", ".env", "the .env file to read under the environment (a missing file is fine)")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: qa config [flags]\n\nPrints every variable qaqueue reads with its effective value and source\n(default, env or .env), secrets masked. Exits 1 if the configuration is invalid.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	dotenv, err := config.LoadDotEnv(*envFile)
	if err != nil {
		return err
	}
	cfg, err := config.Parse(lookupEnv(e), dotenv)
	if err != nil {
		return invalidConfig(err)
	}
	// The OTEL_* values are the telemetry package's to judge.
	invalid := joinFlat(cfg.Validate(), telemetryConfig(cfg).Validate())
	notices := cfg.Notices()
	if *asJSON {
		err = writeConfigJSON(e.stdout, cfg, notices, invalid)
	} else {
		err = writeConfigText(e.stdout, cfg, *envFile, dotenv)
	}
	if err != nil {
		return fmt.Errorf("write configuration: %w", err)
	}
	for _, n := range notices {
		fmt.Fprintln(e.stderr, "note:", n)
	}
	if invalid != nil {
		return invalidConfig(invalid)
	}
	return nil
}

// lookupEnv reads the environment through e, so tests pass a map. getenv
// cannot tell unset from empty, and config treats the two alike anyway.
func lookupEnv(e env) config.Lookup {
	return func(name string) (string, bool) {
		v := e.getenv(name)
		return v, v != ""
	}
}

// joinFlat joins errs, unpacking joined ones, so invalidConfig counts each
// problem.
func joinFlat(errs ...error) error {
	var all []error
	for _, err := range errs {
		if multi, ok := err.(interface{ Unwrap() []error }); ok {
			all = append(all, multi.Unwrap()...)
		} else if err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// invalidConfig lists the problems one per line, under a count.
func invalidConfig(err error) error {
	n := 1
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		n = len(multi.Unwrap())
	}
	return fmt.Errorf("invalid configuration (%d %s):\n  %s", n, plural(n, "problem"),
		strings.ReplaceAll(err.Error(), "\n", "\n  "))
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func writeConfigText(w io.Writer, cfg *config.Config, envFile string, dotenv map[string]string) error {
	header := fmt.Sprintf("# qaqueue configuration; no env file at %s\n\n", envFile)
	if dotenv != nil {
		header = fmt.Sprintf("# qaqueue configuration; env file %s (%d %s)\n\n", envFile, len(dotenv), plural(len(dotenv), "variable"))
	}
	_, err := io.WriteString(w, header+cfg.String())
	return err
}

// configJSON is the --json output.
type configJSON struct {
	Settings map[string]settingJSON `json:"settings"`
	Notices  []string               `json:"notices"`
	Errors   []string               `json:"errors"`
}

type settingJSON struct {
	Value  string `json:"value"`
	Source string `json:"source"`
	Group  string `json:"group"`
}

func writeConfigJSON(w io.Writer, cfg *config.Config, notices []string, invalid error) error {
	out := configJSON{Settings: map[string]settingJSON{}, Notices: notices, Errors: []string{}}
	if out.Notices == nil {
		out.Notices = []string{}
	}
	for _, s := range cfg.Settings() {
		out.Settings[s.Name] = settingJSON{Value: s.Value, Source: s.Source, Group: s.Group}
	}
	if invalid != nil {
		out.Errors = strings.Split(invalid.Error(), "\n")
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
