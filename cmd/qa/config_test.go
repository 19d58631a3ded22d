package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// runConfigCmd runs `qa config args...` with the given environment and
// returns the exit status, stdout and stderr.
func runConfigCmd(t *testing.T, environ map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := env{
		stdin:  strings.NewReader(""),
		stdout: &stdout,
		stderr: &stderr,
		getenv: func(k string) string { return environ[k] },
	}
	code := run(context.Background(), e, append([]string{"config"}, args...))
	return code, stdout.String(), stderr.String()
}

// envFile writes a .env file in a fresh directory and returns its path.
func envFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var configSecrets = map[string]string{
	"LM_API_KEY":              "sk-live-lm-secret",
	"REDIS_URL":               "redis://app:redis-secret-pw@redis:6379/0",
	"REDIS_SENTINEL_PASSWORD": "sentinel-secret-pw",
	"API_KEYS":                "alice:alice-secret-key",
	"ADMIN_API_KEYS":          "ops:ops-secret-key",
	"CACHE_REDIS_URL":         "redis://:cache-secret-pw@cache:6379/0",
}

func assertNoSecrets(t *testing.T, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		for _, s := range []string{"sk-live-lm-secret", "redis-secret-pw", "sentinel-secret-pw", "alice-secret-key", "ops-secret-key", "cache-secret-pw"} {
			if strings.Contains(out, s) {
				t.Errorf("output leaks %q:\n%s", s, out)
			}
		}
	}
}

func TestConfigText(t *testing.T) {
	t.Parallel()
	environ := map[string]string{"PORT": "9000", "WORKERS": "4"}
	for k, v := range configSecrets {
		environ[k] = v
	}
	path := envFile(t, "PORT=9999\nLOG_FORMAT=console\n")
	code, stdout, stderr := runConfigCmd(t, environ, "--env-file", path)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"# qaqueue configuration; env file " + path + " (2 variables)\n\n# HTTP\n",
		"PORT=9000                                     # env\n",
		"LOG_FORMAT=console                            # .env\n",
		"JOB_TIMEOUT=2m                                # default\n",
		"REDIS_URL=redis://app:***@redis:6379/0        # env\n",
		"LM_API_KEY=***                                # env\n",
		"API_KEYS=alice:***                            # env\n",
		"\n# Log\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if want := "note: WORKERS=4 has no effect here: scale workers as processes or replicas\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	assertNoSecrets(t, stdout, stderr)
}

func TestConfigNoEnvFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing.env")
	code, stdout, stderr := runConfigCmd(t, nil, "--env-file", path)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "# qaqueue configuration; no env file at "+path+"\n") {
		t.Errorf("stdout starts %q", stdout[:min(len(stdout), 100)])
	}
}

func TestConfigJSON(t *testing.T) {
	t.Parallel()
	environ := map[string]string{"OPENAI_API_KEY": "sk-live-lm-secret"}
	for k, v := range configSecrets {
		if k != "LM_API_KEY" {
			environ[k] = v
		}
	}
	path := envFile(t, "HOST=127.0.0.1\n")
	code, stdout, stderr := runConfigCmd(t, environ, "--json", "--env-file", path)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var got configJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	for name, want := range map[string]settingJSON{
		"HOST":            {Value: "127.0.0.1", Source: ".env", Group: "HTTP"},
		"PORT":            {Value: "8000", Source: "default", Group: "HTTP"},
		"LM_API_KEY":      {Value: "***", Source: "env (OPENAI_API_KEY)", Group: "LM"},
		"CACHE_REDIS_URL": {Value: "redis://:***@cache:6379/0", Source: "env", Group: "Cache"},
		"ADMIN_API_KEYS":  {Value: "ops:***", Source: "env", Group: "Security"},
	} {
		if diff := cmp.Diff(want, got.Settings[name]); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
		}
	}
	if diff := cmp.Diff([]string{"LM_API_KEY is unset: using OPENAI_API_KEY"}, got.Notices); diff != "" {
		t.Errorf("notices mismatch (-want +got):\n%s", diff)
	}
	if len(got.Errors) != 0 {
		t.Errorf("errors = %q, want none", got.Errors)
	}
	assertNoSecrets(t, stdout, stderr)
}

func TestConfigInvalid(t *testing.T) {
	t.Parallel()
	environ := map[string]string{"JOB_TIMEOUT": "1500ms", "CORS_ORIGINS": "*", "API_KEYS": "alice:alice-secret-key"}
	path := filepath.Join(t.TempDir(), "none")

	code, stdout, stderr := runConfigCmd(t, environ, "--env-file", path)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(stdout, "JOB_TIMEOUT=1.5s") {
		t.Errorf("an invalid configuration is still printed; stdout:\n%s", stdout)
	}
	want := "qa config: invalid configuration (2 problems):\n" +
		"  JOB_TIMEOUT: must be a whole number of seconds (asynq stores seconds), got 1.5s\n" +
		`  CORS_ORIGINS: must not contain "*": credentials are allowed, so list each origin, got "*"` + "\n"
	if stderr != want {
		t.Errorf("stderr mismatch:\n got %q\nwant %q", stderr, want)
	}

	code, stdout, _ = runConfigCmd(t, environ, "--json", "--env-file", path)
	var got configJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || code != 1 {
		t.Fatalf("exit %d, JSON error %v", code, err)
	}
	if len(got.Errors) != 2 || !strings.HasPrefix(got.Errors[0], "JOB_TIMEOUT: ") {
		t.Errorf("errors = %q", got.Errors)
	}
	assertNoSecrets(t, stdout, stderr)
}

func TestConfigUnparsable(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runConfigCmd(t, map[string]string{"PORT": "http", "API_KEYS": "alice-secret-key"},
		"--env-file", filepath.Join(t.TempDir(), "none"))
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing printed", code, stdout)
	}
	for _, want := range []string{"invalid configuration (2 problems)", `PORT: must be a whole number, got "http"`, "API_KEYS: entry 1: "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	assertNoSecrets(t, stderr)
}

func TestConfigMalformedEnvFile(t *testing.T) {
	t.Parallel()
	path := envFile(t, "A=1\nLM_API_KEY=\"sk-live-lm-secret\nB=2\n")
	code, stdout, stderr := runConfigCmd(t, nil, "--env-file", path)
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	if want := "qa config: parse env file " + path + ": line 2: unterminated quoted value\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	assertNoSecrets(t, stderr)
}

func TestConfigUsage(t *testing.T) {
	t.Parallel()
	if code, _, stderr := runConfigCmd(t, nil, "extra"); code != 1 || !strings.Contains(stderr, "usage: qa config") {
		t.Errorf("extra argument: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runConfigCmd(t, nil, "--nope"); code != 1 || !strings.Contains(stderr, "flag provided but not defined") {
		t.Errorf("unknown flag: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runConfigCmd(t, nil, "-h"); code != 0 || !strings.Contains(stderr, "--json") && !strings.Contains(stderr, "-json") {
		t.Errorf("-h: exit %d, stderr %q", code, stderr)
	}
}

func TestConfigChecksTheTelemetryVariables(t *testing.T) {
	t.Parallel()
	code, _, stderr := runConfigCmd(t, map[string]string{"OTEL_TRACES_SAMPLER": "sometimes", "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318", "PORT": "-1"},
		"--env-file", filepath.Join(t.TempDir(), "none"))
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{"invalid configuration (3 problems)", `OTEL_TRACES_SAMPLER="sometimes"`, `OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}
