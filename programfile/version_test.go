package programfile

import (
	"strings"
	"testing"
)

func TestBundleVersion(t *testing.T) {
	t.Parallel()
	dir := "testdata/twostage"
	base, err := Load(dir, "program.yaml", 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	v, err := base.Version()
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 64 || strings.Trim(v, "0123456789abcdef") != "" {
		t.Fatalf("version %q is not sha256 hex", v)
	}
	// Comments and quoting do not change the canonical file, so not the
	// version either.
	restyled := *base
	restyled.YAML = []byte("# a comment\n" + string(base.YAML))
	if restyled.File, err = Parse(restyled.YAML); err != nil {
		t.Fatal(err)
	}
	if got, _ := restyled.Version(); got != v {
		t.Errorf("a comment changed the version: %s, was %s", got, v)
	}
	for name, change := range map[string]func(b *Bundle){
		"source": func(b *Bundle) { b.Source = append(append([]byte(nil), b.Source...), '\n') },
		"state":  func(b *Bundle) { b.State = append(append([]byte(nil), b.State...), ' ') },
		"file":   func(b *Bundle) { f := *b.File; f.Description += "!"; b.File = &f },
		// The separators keep bytes moving from source to state from
		// giving the same hash.
		"boundary": func(b *Bundle) {
			b.Source, b.State = append(append([]byte(nil), b.Source...), b.State[0]), b.State[1:]
		},
	} {
		changed := *base
		change(&changed)
		if got, err := changed.Version(); err != nil || got == v {
			t.Errorf("%s changed, the version did not (%s, %v)", name, got, err)
		}
	}
}
