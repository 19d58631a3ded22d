package programfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeDir writes files (name → content) under a new temporary folder.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := writeDir(t, map[string]string{
		"claims.yaml":    claimsYAML,
		"signatures.py":  "class ClaimExtraction(dspy.Signature):\n    transcript: str = dspy.InputField()\n",
		"optimized.json": `{"extract.predict": {}}`,
	})
	b, err := Load(dir, "claims.yaml", 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(b.YAML) != claimsYAML || !strings.HasPrefix(string(b.Source), "class ClaimExtraction") || string(b.State) != `{"extract.predict": {}}` {
		t.Errorf("bundle: yaml %d bytes, source %q, state %q", len(b.YAML), b.Source, b.State)
	}
	if b.File.Name != "claims" {
		t.Errorf("file name %q", b.File.Name)
	}
}

func TestLoadWithoutSourceOrState(t *testing.T) {
	t.Parallel()
	dir := writeDir(t, map[string]string{"progs/a.yaml": stage1})
	b, err := Load(dir, "progs/a.yaml", 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	if b.Source != nil || b.State != nil || !bytes.Equal(b.YAML, []byte(stage1)) {
		t.Errorf("bundle %+v", b)
	}
}

func TestLoadRefuses(t *testing.T) {
	t.Parallel()
	outside := writeDir(t, map[string]string{"secret.py": "x"})
	dir := writeDir(t, map[string]string{
		"claims.yaml":    claimsYAML,
		"signatures.py":  strings.Repeat("#", 100),
		"optimized.json": strings.Repeat(" ", 100),
		"big.yaml":       stage1 + "description: " + strings.Repeat("x", MaxYAMLBytes) + "\n",
		"bad.yaml":       stage1 + "module: x\n",
		"link.yaml":      "name: a\nsource: link.py\nstages:\n  - {key: s, module: Predict, signature: Q}\n",
		"nosource.yaml":  "name: a\nsource: missing.py\nstages:\n  - {key: s, module: Predict, signature: Q}\n",
	})
	if err := os.Symlink(filepath.Join(outside, "secret.py"), filepath.Join(dir, "link.py")); err != nil {
		t.Fatal(err)
	}
	total := int64(len(claimsYAML)) + 100 + 100
	tests := []struct {
		name, file string
		max        int64
		want       string
	}{
		{"over the total", "claims.yaml", total - 1, "load program claims.yaml: read optimized.json: more than the 99 bytes left under PROGRAM_MAX_BYTES"},
		{"YAML over its own limit", "big.yaml", 8 << 20, "load program: read big.yaml: more than the 262144 bytes left under MaxYAMLBytes"},
		{"a bad file names itself", "bad.yaml", 8 << 20, "load program: bad.yaml: 6:1: module: unknown key (name, description, source, state, stages, outputs)"},
		{"a name outside the folder", "../x.yaml", 8 << 20, "load program: read ../x.yaml: openat ../x.yaml: path escapes from parent"},
		{"a symbolic link outside the folder", "link.yaml", 8 << 20, "load program link.yaml: read link.py: openat link.py: path escapes from parent"},
		{"a missing source", "nosource.yaml", 8 << 20, "load program nosource.yaml: read missing.py: openat missing.py: no such file or directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(dir, tc.file, tc.max)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n got %v\nwant %s", err, tc.want)
			}
		})
	}
	if _, err := Load(dir, "claims.yaml", total); err != nil {
		t.Errorf("at exactly the total: %v", err)
	}
}
