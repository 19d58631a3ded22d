package docstest

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/lmclient"
)

// TestREADMEProviderTable keeps the README's provider table what lmclient
// knows: every provider, its key and base URL variables, its default base.
func TestREADMEProviderTable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := providerTable()
	if !strings.Contains(string(readme), want) {
		t.Fatalf("README.md lacks the provider table as lmclient knows it:\n%s", want)
	}
}

// providerTable renders the README's table of lmclient.Providers().
func providerTable() string {
	var b strings.Builder
	b.WriteString("| provider | key | default base URL | base URL variables |\n|---|---|---|---|\n")
	for _, p := range lmclient.Providers() {
		key := codeList(p.KeyVars)
		switch {
		case p.Keyless && len(p.KeyVars) == 0:
			key = "none"
		case p.Keyless:
			key += " (if the server wants one)"
		}
		base := "none: set `LM_API_BASE`"
		if p.DefaultBase != "" {
			base = "`" + p.DefaultBase + "`"
		}
		vars := codeList(p.BaseVars)
		if vars == "" {
			vars = "—"
		}
		fmt.Fprintf(&b, "| `%s/` | %s | %s | %s |\n", p.Name, key, base, vars)
	}
	return b.String()
}

func codeList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "`" + n + "`"
	}
	return strings.Join(q, ", ")
}
