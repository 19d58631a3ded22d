package programfile

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// billionLaughs is the classic alias bomb: ten levels of nine aliases to
// the level below, 9^9 strings once expanded, in under 1 KiB.
func billionLaughs(at string) string {
	var b strings.Builder
	b.WriteString("name: a\n" + at + ":\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "  l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9), ", "))
	}
	return b.String()
}

// TestHostile feeds Parse what an attacker would push and checks each is
// refused for the right reason with memory staying flat: bounded
// allocation while refusing (the tree is linear in an input of at most
// MaxYAMLBytes) and nothing retained afterwards. It does not run in
// parallel, so the process's allocation counters are its own.
func TestHostile(t *testing.T) {
	const (
		maxAlloc    = 64 << 20 // measured worst case ~35 MiB: a flat list of 128 Ki one-letter items
		maxRetained = 1 << 20
	)
	flat := "name: a\ndescription: [" + strings.Repeat("a,", (MaxYAMLBytes-32)/2) + "a]\n"
	tests := []struct{ name, yaml, want string }{
		{"billion laughs under an unknown key", billionLaughs("lols"), "3:7: lols.l0: anchors (&l0) are not allowed"},
		{"billion laughs as the description", billionLaughs("description"), "3:7: description.l0: anchors (&l0) are not allowed"},
		{"alias bomb in flow style", "name: a\nstages: [&x [a, a], [*x, *x, *x]]\n", "2:10: stages[0]: anchors (&x) are not allowed"},
		{"over the size limit", "name: a\ndescription: " + strings.Repeat("x", 4<<20) + "\n",
			fmt.Sprintf("the file is %d bytes, over the limit of 262144 (MaxYAMLBytes, 256 KiB)", 8+13+4<<20+1)},
		{"flow nesting past the parser's limit", "name: a\ndescription: " + strings.Repeat("[", 200_000) + "\n",
			"read YAML: line 2: exceeded max depth of 10000"},
		{"block nesting past the parser's limit", "name: a\ndescription:\n" + strings.Repeat("- ", 100_000) + "a\n",
			"read YAML: line 2: exceeded max depth of 10000"},
		{"nesting within the parser's limit", "name: a\ndescription: " + strings.Repeat("[", 9_000) + strings.Repeat("]", 9_000) + "\n",
			"2:18: description[0][0][0][0]: nested deeper than a program file goes (5 levels)"},
		{"a flat list at the size limit", flat, "2:14: description: must be a string, not a list"},
		{"a binary tag", "name: a\ndescription: !!binary aGVsbG8=\n", "2:14: description: tags (!!binary) are not allowed"},
		{"a language tag", "name: a\ndescription: !!python/object:os.system [rm]\n", "2:14: description: tags (!!python/object:os.system) are not allowed"},
		{"a local tag", "name: a\nstages: !<tag:example.com,2026:stage> []\n", "2:9: stages: tags (tag:example.com,2026:stage) are not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.yaml)
			var before, during, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Parse(data)
			runtime.ReadMemStats(&during)
			runtime.GC()
			runtime.ReadMemStats(&after)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n got %v\nwant %s", err, tc.want)
			}
			if alloc := during.TotalAlloc - before.TotalAlloc; alloc > maxAlloc {
				t.Errorf("refusing a %d-byte file allocated %d bytes, over %d", len(data), alloc, maxAlloc)
			}
			if kept := int64(after.HeapAlloc) - int64(before.HeapAlloc); kept > maxRetained {
				t.Errorf("refusing it kept %d bytes live, over %d", kept, maxRetained)
			}
			t.Logf("%d-byte input: allocated %d KiB", len(data), (during.TotalAlloc-before.TotalAlloc)>>10)
		})
	}
}
