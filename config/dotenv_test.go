package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadDotEnv(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `# a comment
export PORT=9000
LM_API_KEY="sk-in-dotenv"
CORS_ORIGINS=https://a.example.com # trailing comment
MULTI="line one
line two"
EMPTY=
`)
	got, err := LoadDotEnv(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"PORT": "9000", "LM_API_KEY": "sk-in-dotenv", "CORS_ORIGINS": "https://a.example.com",
		"MULTI": "line one\nline two", "EMPTY": "",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadDotEnvMissing(t *testing.T) {
	t.Parallel()
	got, err := LoadDotEnv(filepath.Join(t.TempDir(), "no-such.env"))
	if err != nil || got != nil {
		t.Errorf("LoadDotEnv(missing) = %v, %v, want nil, nil", got, err)
	}
}

func TestLoadDotEnvUnreadable(t *testing.T) {
	t.Parallel()
	if _, err := LoadDotEnv(t.TempDir()); err == nil || !strings.HasPrefix(err.Error(), "read env file: ") {
		t.Errorf("LoadDotEnv(a directory) error = %v", err)
	}
}

func TestLoadDotEnvMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    string // after "parse env file <path>: "
	}{
		{
			name:    "bad name",
			content: "PORT=1\nLM_API_KEY=sk-secret-value\nBAD-NAME=sk-other-secret\nHOST=x\n",
			want:    `line 3: unexpected character "-" in variable name`,
		},
		{
			name:    "unterminated quote",
			content: "A=1\nB=2\nC=\"sk-secret-value\nD=4\n",
			want:    "line 3: unterminated quoted value",
		},
		{
			name:    "after a multi-line value",
			content: "A=\"one\ntwo\"\nno equals sign sk-secret-value\n",
			want:    `line 3: unexpected character "-" in variable name`,
		},
		{
			name:    "first line, CRLF",
			content: "what?\r\nA=1\r\n",
			want:    `line 1: unexpected character "?" in variable name`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tt.content)
			_, err := LoadDotEnv(path)
			if err == nil {
				t.Fatal("LoadDotEnv succeeded, want an error")
			}
			if want := "parse env file " + path + ": " + tt.want; err.Error() != want {
				t.Errorf("error = %q\nwant    %q", err, want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error quotes the file: %q", err)
			}
			if _, _, err := LoadWithDotEnv(MapLookup(nil), path); err == nil {
				t.Error("LoadWithDotEnv succeeded on a malformed file")
			}
		})
	}
}

func TestLoadWithDotEnv(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "PORT=9002\nLOG_FORMAT=console\n")
	cfg, _, err := LoadWithDotEnv(MapLookup(map[string]string{"PORT": "9001"}), path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Port != 9001 || cfg.Log.Format != "console" {
		t.Errorf("PORT = %d (want the environment's 9001), LOG_FORMAT = %q (want .env's console)", cfg.HTTP.Port, cfg.Log.Format)
	}
	if _, _, err := LoadWithDotEnv(MapLookup(nil), filepath.Join(t.TempDir(), "none")); err != nil {
		t.Errorf("LoadWithDotEnv without a file: %v", err)
	}
}

func TestLoadDotEnvTooLarge(t *testing.T) {
	t.Parallel()
	path := writeFile(t, strings.Repeat("# padding\n", maxDotEnvBytes/10+1))
	if _, err := LoadDotEnv(path); err == nil || !strings.Contains(err.Error(), "larger than 1MiB") {
		t.Errorf("error = %v", err)
	}
}
