package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestParseAPIKeys(t *testing.T) {
	t.Parallel()
	aliceSum := sha256.Sum256([]byte("alice-key-123"))
	bobSum := sha256.Sum256([]byte("bob-secret"))
	tests := []struct {
		name    string
		in      string
		want    APIKeys
		wantErr []string
	}{
		{name: "empty", in: "", want: nil},
		{name: "only separators", in: " , ,", want: nil},
		{
			name: "plain and hashed",
			in:   "alice:alice-key-123, bob:sha256:" + strings.ToUpper(hexSum("bob-secret")) + ",",
			want: APIKeys{
				{Name: "alice", Plain: "alice-key-123", SHA256: aliceSum},
				{Name: "bob", SHA256: bobSum},
			},
		},
		{name: "key with colons", in: "svc:a:b:c", want: APIKeys{{Name: "svc", Plain: "a:b:c", SHA256: sha256.Sum256([]byte("a:b:c"))}}},
		{name: "no colon", in: "sk-abcdef", wantErr: []string{`entry 1: must be "name:key" or "name:sha256:<hex>"`}},
		{name: "empty name", in: ":k", wantErr: []string{"entry 1: empty name"}},
		{name: "bad name", in: "al ice:k", wantErr: []string{"entry 1: name may hold only letters, digits, '.', '_' and '-'"}},
		{name: "long name", in: strings.Repeat("n", 65) + ":k", wantErr: []string{"entry 1: name is longer than 64 characters"}},
		{name: "empty key", in: "a:", wantErr: []string{`entry 1: "a": empty key`}},
		{name: "key with space", in: "a:x y", wantErr: []string{`entry 1: "a": key contains spaces or control characters`}},
		// What `API_KEYS=eve:sha256:$(printf %s "$UNSET" | sha256sum)` gives:
		// accepted, it would make every request without a key eve's.
		{name: "digest of the empty key", in: "eve:sha256:" + hexSum(""), wantErr: []string{`entry 1: "eve": sha256 is the digest of an empty key`}},
		{name: "short hash", in: "a:sha256:abcd", wantErr: []string{`entry 1: "a": sha256 must be 64 hex digits`}},
		{name: "not hex", in: "a:sha256:" + strings.Repeat("z", 64), wantErr: []string{`entry 1: "a": sha256 must be 64 hex digits`}},
		{name: "duplicate name", in: "a:k1,a:k2", wantErr: []string{`entry 2: name "a" is used twice`}},
		{
			name:    "same key twice, plain and hashed",
			in:      "a:k1,b:sha256:" + hexSum("k1"),
			wantErr: []string{`entry 2 ("b"): same key as "a"`},
		},
		{
			name:    "every problem",
			in:      "a:k1,bad,a:k2,c:",
			wantErr: []string{`entry 2: must be`, `entry 3: name "a" is used twice`, `entry 4: "c": empty key`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAPIKeys(tt.in)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("ParseAPIKeys(%q) = %v, want an error", tt.in, got)
				}
				lines := strings.Split(err.Error(), "\n")
				if len(lines) != len(tt.wantErr) {
					t.Fatalf("ParseAPIKeys(%q) error has %d lines, want %d:\n%v", tt.in, len(lines), len(tt.wantErr), err)
				}
				for i, want := range tt.wantErr {
					if !strings.HasPrefix(lines[i], want) {
						t.Errorf("error line %d = %q, want prefix %q", i, lines[i], want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAPIKeys(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseAPIKeys(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestAPIKeysLookup(t *testing.T) {
	t.Parallel()
	keys, err := ParseAPIKeys("alice:alice-key,bob:sha256:" + hexSum("bob-key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		presented, want string
	}{
		{"alice-key", "alice"},
		{"bob-key", "bob"},
		{"sha256:" + hexSum("bob-key"), ""}, // the digest is not the key
		{"", ""},
		{"alice-key ", ""},
	} {
		k, ok := keys.Lookup(tt.presented)
		if got := map[bool]string{true: k.Name}[ok]; got != tt.want {
			t.Errorf("Lookup(%q) = %q, %v, want %q", tt.presented, k.Name, ok, tt.want)
		}
	}
	if diff := cmp.Diff([]string{"alice", "bob"}, keys.Names()); diff != "" {
		t.Errorf("Names() mismatch (-want +got):\n%s", diff)
	}
}

// TestAPIKeysNeverMatchEmpty: whatever the list holds (a Config built by
// hand can hold the empty key's digest), an empty token authenticates no
// one.
func TestAPIKeysNeverMatchEmpty(t *testing.T) {
	t.Parallel()
	keys := APIKeys{{Name: "eve", SHA256: sha256.Sum256(nil)}}
	if k, ok := keys.Lookup(""); ok {
		t.Errorf("Lookup(\"\") = %q, true", k.Name)
	}
	if keys[0].Matches("") {
		t.Error(`Matches("") = true`)
	}
}

func TestAPIKeysNeverPrintKeys(t *testing.T) {
	t.Parallel()
	keys, err := ParseAPIKeys("alice:alice-plain-key")
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		for _, v := range []any{keys, keys[0], keys[0].Plain} {
			if out := fmt.Sprintf(format, v); strings.Contains(out, "alice-plain-key") {
				t.Errorf("Sprintf(%q, %T) = %q: leaks the key", format, v, out)
			}
		}
	}
	if keys[0].Plain.Reveal() != "alice-plain-key" {
		t.Errorf("Reveal() = %q", keys[0].Plain.Reveal())
	}
}

// FuzzParseAPIKeys checks that the parser never panics, never echoes a key
// in an error, and that what it accepts is consistent.
func FuzzParseAPIKeys(f *testing.F) {
	for _, s := range []string{
		"a:k", "a:k,b:sha256:" + hexSum("x"), "a:k,a:k", ":", "a:sha256:", ",,,", "a:b:c", "x y:z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := ParseAPIKeys(s)
		if err != nil {
			var names strings.Builder
			for entry := range strings.SplitSeq(s, ",") {
				name, _, _ := strings.Cut(strings.TrimSpace(entry), ":")
				names.WriteString(name + "\n")
			}
			for entry := range strings.SplitSeq(s, ",") {
				_, key, ok := strings.Cut(strings.TrimSpace(entry), ":")
				// Short keys can match message text by chance, and a key
				// that is also written as a name may appear as the name.
				if ok && len(key) >= 12 && !strings.HasPrefix(key, "sha256:") &&
					!strings.Contains(names.String(), key) && strings.Contains(err.Error(), key) {
					t.Fatalf("error %q echoes key %q", err, key)
				}
			}
			return
		}
		names := map[string]bool{}
		for _, k := range keys {
			if k.Name == "" || names[k.Name] {
				t.Fatalf("ParseAPIKeys(%q): empty or duplicate name %q", s, k.Name)
			}
			names[k.Name] = true
			if k.Plain != "" && !k.Matches(k.Plain.Reveal()) {
				t.Fatalf("ParseAPIKeys(%q): key %q does not match itself", s, k.Name)
			}
		}
	})
}
